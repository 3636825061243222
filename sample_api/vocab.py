"""Word pools for the generator: deliberately messy, like real source data.

The pools mix accents (é, ł, ø, ß), CJK, apostrophes, hyphens, commas, quotes, newlines
and emoji so that an extractor and its cleaning step meet them early. Changing a pool
changes every dump: treat this file as data.
"""

from __future__ import annotations

# (display, ascii used in e-mail addresses); an ascii of "" means "derive it".
NameGroup = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...], int]


def _plain(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, "") for name in names)


NAME_GROUPS: tuple[NameGroup, ...] = (
    (
        _plain(
            "Olivia",
            "Amelia",
            "Isla",
            "Ava",
            "Mia",
            "Noah",
            "Oliver",
            "George",
            "Leo",
            "Harry",
            "Jack",
            "Charlotte",
            "Emily",
            "Thomas",
            "Sophie",
            "Mary-Jane",
            "Anne-Marie",
            "D'Arcy",
            "Zoë",
            "Chloë",
            "Jean-Paul",
        ),
        _plain(
            "Smith",
            "Jones",
            "Taylor",
            "Brown",
            "Williams",
            "Wilson",
            "Johnson",
            "Davies",
            "Robinson",
            "Wright",
            "Thompson",
            "Evans",
            "Walker",
            "White",
            "Roberts",
            "Green",
            "Hall",
            "Wood",
            "Clarke",
            "Smith-Jones",
            "Bowes-Lyon",
            "Fforde",
        ),
        50,
    ),
    (
        _plain("Siobhán", "Aoife", "Seán", "Niamh", "Pádraig", "Éabha", "Ciarán", "Róisín"),
        _plain(
            "O'Brien", "O'Connor", "Ó Súilleabháin", "McCarthy", "Murphy", "O'Neill", "Mac Giolla Phádraig", "D'Souza"
        ),
        8,
    ),
    (
        _plain("Łukasz", "Paweł", "Małgorzata", "Żaneta", "Wojciech", "Agnieszka", "Grzegorz"),
        _plain("Kowalski", "Wiśniewska", "Łuczak", "Dąbrowski", "Zieliński", "Szczęsny", "Nowak-Jeziorańska"),
        6,
    ),
    (
        _plain("Søren", "Bjørn", "Åsa", "Jürgen", "Björn", "Grete", "Øyvind", "Ægir", "Jörg"),
        _plain("Ødegaard", "Strauß", "Müller", "Jørgensen", "Åberg", "Weiß", "Groß", "von der Höhe", "Østergård"),
        6,
    ),
    (
        _plain("José", "Chloé", "Renée", "François", "Anaïs", "Jean-Luc", "María José", "Inês", "João", "Noémie"),
        _plain("García", "Núñez", "Lefèvre", "D'Angelo", "de la Cruz", "Peña", "Côté", "Gonçalves", "Martín-Sánchez"),
        8,
    ),
    (
        (
            ("伟", "wei"),
            ("芳", "fang"),
            ("秀英", "xiuying"),
            ("さくら", "sakura"),
            ("陽翔", "haruto"),
            ("Wei", ""),
            ("Xiu Ying", ""),
            ("지우", "jiwoo"),
        ),
        (
            ("王", "wang"),
            ("李", "li"),
            ("张", "zhang"),
            ("佐藤", "sato"),
            ("鈴木", "suzuki"),
            ("Zhang", ""),
            ("Li", ""),
            ("김", "kim"),
        ),
        6,
    ),
    (
        _plain(
            "Priya",
            "Aarav",
            "Fatima",
            "Oluwaseun",
            "Chidi",
            "Kwame",
            "Ngozi",
            "Muhammad",
            "Aïsha",
            "İbrahim",
            "Nguyễn Thị",
        ),
        _plain("Patel", "Khan", "Okafor", "Adeyemi", "Mensah", "Singh", "Begum", "Al-Sayed", "Öztürk", "Trần"),
        16,
    ),
)

EMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com",
    "outlook.com",
    "hotmail.co.uk",
    "yahoo.co.uk",
    "icloud.com",
    "btinternet.com",
    "protonmail.com",
    "acme-corp.co.uk",
    "example.org",
    "nhs.net",
    "mail.example.ac.uk",
    "sky.com",
)

EMPLOYERS: tuple[str, ...] = (
    "Acme Ltd",
    "Sainsbury's",
    "Marks & Spencer",
    "Ernst, Young & Co.",
    "Café Nero",
    "Müller UK",
    "BT Group",
    "Lloyds Banking Group",
    "Høyer Logistics",
    "Rolls-Royce",
    "O'Neill & Sons",
    "株式会社サンプル",
    "Nationwide",
    'The "Big" Agency',
    "Żabka UK",
    "NHS Digital",
    "Capgemini",
    "Morgan Stanley",
    "Ocado",
    "Greggs",
)

PROGRAMME_BASES: tuple[str, ...] = (
    "Data Fellowship",
    "Software Engineering",
    "Data Analyst",
    "Business Analyst",
    "Cyber Security Technologist",
    "DevOps Engineer",
    "AI Engineer",
    "Project Management",
    "Digital Marketing",
    "Business Transformation",
    "Data Literacy",
    "Advanced Data Fellowship",
    "Applied Data Science",
    "Cloud Engineering",
    "Machine Learning Engineer",
    "Full Stack Developer",
    "Product Management",
    "Leadership & Management",
    "Team Leader",
    "Operations Manager",
    "Financial Services Analyst",
    "Accounting Technician",
    "HR Consultant",
    "Sales Executive",
    "Customer Success",
    "IT Technician",
    "Network Engineer",
    "Power BI for Analysts",
    "SQL Foundations",
    "Python for Data",
    "Digital Productivity",
    "Content Creator",
    "UX Designer",
    "Quality Assurance Tester",
    "Cloud Solutions Architect",
    "Software Tester",
    "Data Protection Officer",
    "Agile Delivery",
    "Change Management",
    "Business Intelligence",
    "Data Engineering",
    "Insight Analyst",
    "Risk & Compliance",
    "Café Operations",
    "Gestión de Proyectos",
    "Datenanalyse Grundlagen",
    "数据分析",
    "Responsible AI",
)

PROGRAMME_LEVELS: tuple[str, ...] = ("Level 3", "Level 4", "Level 5", "Level 6", "Level 7")

DURATIONS_MONTHS: tuple[int, ...] = (12, 13, 15, 15, 18, 18, 18, 24, 24, 36)

PROJECT_TOPICS: tuple[str, ...] = (
    "Customer churn analysis",
    "Sales dashboard in Power BI",
    'ETL pipeline for "orders"',
    "Données clients : nettoyage",
    "データ分析レポート",
    "Forecasting demand, Q3",
    "Team's retro tracker",
    "Migrating to the cloud ☁️",
    "A/B test of the checkout",
    "Reducing call-centre wait times",
    "Stock-level alerts",
    "GDPR data audit",
    "Łódź office energy usage",
    "Straßenbahn timetable scraper",
    "NPS survey, free text",
    "Automating the month-end close",
    "Predicting late deliveries",
    "Café footfall model",
    "Data quality checks 🔍",
    'API for the "legacy" CRM',
)

PROJECT_KINDS: tuple[str, ...] = (
    "Project {n}: {topic}",
    "{topic}",
    "Capstone – {topic}",
    "{topic} (case study)",
    "Workplace project #{n} - {topic}",
    "  {topic}",
    "{topic}  ",
    "EPA portfolio: {topic}",
)

SENTENCES: tuple[str, ...] = (
    "Built a pipeline that loads daily extracts, cleans them and publishes a report.",
    'The stakeholder said: "we need this by Friday", so scope was cut.',
    "Used Python, SQL and a bit of Excel; results were shared with the team.",
    "Compared three models, picked the simplest one that met the target.",
    "It's the apprentice's own write-up, so tone varies a lot.",
    "Line one of the notes.\nLine two, after a newline.",
    "Windows line ending here.\r\nAnd the rest of it.",
    "Great result 🎉🚀 – dashboard adopted by two departments.",
    'Costs fell by 12%, see appendix "B" for details.',
    "Tab\tseparated\tvalues were pasted here by mistake.",
    "Feedback: 'clear, concise; needs more tests'.",
    "Naïve approach first, then a café-style rota optimiser.",
    "データの前処理と可視化を行った。",
    "Zażółć gęślą jaźń – Polish test sentence from the source system.",
    "Data from 2019–2023, 1,234,567 rows, 42 columns.",
    "",
)

PROGRAMME_BLURBS: tuple[str, ...] = (
    "Learn to turn data into decisions, with real workplace projects.",
    'Covers "modern" tooling: Python, SQL, cloud, and version control.',
    "Apprentices spend 20% of their time off the job, coaching included.",
    "Assessment: portfolio, project, and a professional discussion.\nEnd-point assessment follows.",
    "Ideal for career changers 💼, graduates, and existing staff.",
    "Taught remotely; cohorts start monthly, except in August.",
    "Includes Level 2 Maths & English if required.",
)

UNKNOWN_STATUSES: tuple[str, ...] = ("in_review", "archived", "resubmitted", "unknown", "N/A")

BAD_DATES: tuple[str, ...] = (
    "not a date",
    "2024-02-30T25:61:00",
    "31/12/2023 14:05",
    "",
    "yesterday",
    "2023-13-01T00:00:00",
    "0000-00-00T00:00:00",
)

ORPHAN_PROGRAMME_IDS_EXTRA: tuple[int, ...] = (51, 52, 57, 60, 99, 404, 1000)
