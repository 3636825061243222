"""Cleaning: Column helpers and the clean_<entity> steps, the same with ANSI mode on and off.

Valid rows leave their raw text in bronze (`raw_record` is null); rejected rows keep it for quarantine.
"""

import datetime as dt
import json
import unicodedata

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from multiverse_etl.entities import entity as spec_of
from multiverse_etl.transform.clean import (
    KIND_MISSING,
    KIND_NULL,
    KIND_NUMBER,
    KIND_OTHER,
    KIND_STRING,
    NFC_STABLE_RANGES,
    clean_email,
    has_clean_edges,
    has_lone_surrogate,
    is_compact_record,
    is_valid_email,
    json_token_kind,
    key_follower,
    may_change_under_nfc,
    may_hold_lone_surrogate,
    normalize_unicode,
    parse_source_timestamp,
    to_integer,
    trim_text,
    validate_records,
)
from multiverse_etl.transform.schemas import CLEAN_SCHEMAS
from support.landed import Raw, bronze_frame, cleaned, compact, lineage, spark_conf
from support.oracle import WHITE_SPACE

UTC = dt.timezone.utc
# The JSON types `json_token_kind` gives (small integers), by name.
KIND = {"string": KIND_STRING, "number": KIND_NUMBER, "null": KIND_NULL, "missing": KIND_MISSING, "other": KIND_OTHER}


def one_column(spark, values, name="s", dtype=T.StringType()):
    return spark.createDataFrame([(v,) for v in values], T.StructType([T.StructField(name, dtype, True)]))


def test_trim_text_strips_unicode_whitespace_at_the_edges_only(spark):
    pairs = [
        (" a  b ", "a  b"),
        ("\u00a0Zoë\t", "Zoë"),
        ("\nline one\nline two\r\n", "line one\nline two"),
        ("\u2003x\u3000", "x"),
        ("   ", ""),
        ("", ""),
        (None, None),
    ]
    frame = spark.createDataFrame(pairs, "s string, expected string")
    assert_df_equality(frame.select(trim_text(F.col("s")).alias("s")), frame.select(F.col("expected").alias("s")))


def test_has_clean_edges_is_true_only_for_text_starting_and_ending_with_printable_ascii(spark):
    texts = ["a", "ab", "Zoë", "éa", "aé", " a", "a ", "\ta", "a\n", "\u00a0a", "a\u3000", "~x!", "\x7fa\x7f"]
    texts += ["a\x85", "😀a", "a😀", "a b", "", None]

    def printable_ascii(c):  # the reference: by code point, not bytes
        return 0x21 <= ord(c) <= 0x7F

    expected = [(t, None if t is None else bool(t) and printable_ascii(t[0]) and printable_ascii(t[-1])) for t in texts]
    frame = spark.createDataFrame(expected, "s string, clean boolean")
    assert_df_equality(frame.select("s", has_clean_edges(F.col("s")).alias("clean")), frame, ignore_nullable=True)
    assert all(t.strip(WHITE_SPACE) == t for t, clean in expected if clean)


LONE_RECORDS = [
    r'{"a":"x","b":"y"}',
    r'{"a":"\ud83d\ude00 pair","b":"\u00e9"}',
    r'{"a":"An\ud800n","b":"y"}',
    r'{"a":"x","b":"\uDC00 low"}',
    r'{"a":"\\ud800","b":"\\\udbff"}',
    r'{"a":"\udbff\\udc00","b":"\ude00\ud83d"}',
    r'{"a":"\ud83d\ude00\ud83d","b":"x\\"}',
    r'{"a":1,"b":["\ud800"]}',
]


def test_may_hold_lone_surrogate_is_true_whenever_a_field_holds_one_and_narrows_nothing(spark):
    """The reference is Python's JSON reader, which keeps a lone surrogate as it is."""
    rows = []
    for raw in LONE_RECORDS:
        record = json.loads(raw)
        lone = {f: isinstance(record[f], str) and any(0xD800 <= ord(c) <= 0xDFFF for c in record[f]) for f in "ab"}
        rows.append((raw, lone["a"], lone["b"]))
    frame = spark.createDataFrame(rows, "raw string, a boolean, b boolean")
    raw, candidate = F.col("raw"), may_hold_lone_surrogate(F.col("raw"))
    got = frame.select(
        "raw",
        has_lone_surrogate(raw, "a", candidate).alias("a"),
        has_lone_surrogate(raw, "b", candidate).alias("b"),
        candidate.alias("candidate"),
        has_lone_surrogate(raw, "a").alias("a_alone"),
        has_lone_surrogate(raw, "b").alias("b_alone"),
    )
    assert_df_equality(got.select("raw", "a", "b"), frame, ignore_nullable=True, ignore_row_order=True)
    for row in got.collect():
        assert (row.a, row.b) == (row.a_alone, row.b_alone)
        assert row.candidate or not (row.a or row.b)
    assert [r.candidate for r in got.orderBy("raw").collect() if r.raw in LONE_RECORDS[:2]] == [False, False]


EMAILS = [
    (" Ada.Lovelace@Example.ORG ", "ada.lovelace@example.org", True),
    ("d'arcy.smith@gmail.com", "d'arcy.smith@gmail.com", True),
    ("O'Brien_42@Mail.Example.AC.UK\t", "o'brien_42@mail.example.ac.uk", True),
    ("first+tag@sub.domain.co.uk", "first+tag@sub.domain.co.uk", True),
    ("no-at-sign.example.org", "no-at-sign.example.org", False),
    ("two@@example.org", "two@@example.org", False),
    ("x@localhost", "x@localhost", False),
    ("x.@example.org", "x.@example.org", False),
    (".x@example.org", ".x@example.org", False),
    ("x..y@example.org", "x..y@example.org", False),
    ("a b@example.org", "a b@example.org", False),
    ("zoë@example.org", "zoë@example.org", False),
    ("x@-bad.example.org", "x@-bad.example.org", False),
    ("x@example.c", "x@example.c", False),
    ("x@example.org\nevil", "x@example.org\nevil", False),
    ("a" * 250 + "@example.org", "a" * 250 + "@example.org", False),
    ("", "", False),
    (None, None, None),
]


def test_email_is_trimmed_lower_cased_and_checked(spark):
    frame = spark.createDataFrame(EMAILS, "raw string, email string, valid boolean")
    cleaned = frame.select(clean_email(F.col("raw")).alias("email")).select(
        "email", is_valid_email(F.col("email")).alias("valid")
    )
    assert_df_equality(cleaned, frame.select("email", "valid"))


TIMESTAMPS = [
    ("2024-03-05T10:21:33", dt.datetime(2024, 3, 5, 10, 21, 33, tzinfo=UTC)),
    ("2024-02-29T23:59:59", dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
    ("not a date", None),
    ("2024-02-30T25:61:00", None),
    ("31/12/2023 14:05", None),
    ("", None),
    ("yesterday", None),
    ("2023-13-01T00:00:00", None),
    ("0000-00-00T00:00:00", None),
    ("2023-02-29T00:00:00", None),
    ("2024-03-05T24:00:00", None),
    ("2024-03-05T10:21:33Z", None),
    ("2024-03-05 10:21:33", None),
    ("2024-03-05T10:21:33.5", None),
    (" 2024-03-05T10:21:33", None),
    (None, None),
]
INTEGERS = [
    ("12", 12, 12),
    ("-3", -3, -3),
    ("0", 0, 0),
    ("2147483648", 2147483648, None),
    ("9223372036854775807", 9223372036854775807, None),
    ("9223372036854775808", None, None),
    ("-9223372036854775808", -9223372036854775808, None),
    ("12.5", None, None),
    ("1e3", None, None),
    (" 12", None, None),
    ("+5", None, None),
    ("A-12", None, None),
    ("", None, None),
    (None, None, None),
]
RAW_RECORDS = [
    ('{"id":1,"name":"x"}', "number", "string"),
    ('{ "id" : "12" ,\n "name" :\t5 }', "string", "number"),
    ('{"id":null,"name":true}', "null", "other"),
    ('{"name":[1,2]}', "missing", "other"),
    ('{"id":-4,"name":{"a":1}}', "number", "other"),
    ('{"name":"a,\\"id\\":1","id":"x"}', "string", "string"),
    ("[1,2]", "missing", "missing"),
]


def _helper_results(spark):
    stamps = spark.createDataFrame(TIMESTAMPS, "s string, ts timestamp")
    integers = spark.createDataFrame(INTEGERS, "s string, big bigint, small int")
    kinds = spark.createDataFrame([(r, KIND[i], KIND[n]) for r, i, n in RAW_RECORDS], "raw string, id int, name int")
    return (
        (stamps.select("s", parse_source_timestamp(F.col("s")).alias("ts")), stamps),
        (
            integers.select("s", to_integer(F.col("s")).alias("big"), to_integer(F.col("s"), "int").alias("small")),
            integers,
        ),
        (
            kinds.select(
                "raw",
                json_token_kind(F.col("raw"), "id").alias("id"),
                json_token_kind(F.col("raw"), "name").alias("name"),
            ),
            kinds,
        ),
    )


@pytest.mark.parametrize("ansi", ["false", "true"])
def test_parsing_and_casts_give_the_same_results_with_ansi_on_and_off(spark, ansi):
    """Bad dates and numbers become null (then a quarantine reason), never an ANSI error, in both modes."""
    with spark_conf(spark, "spark.sql.ansi.enabled", ansi):
        for actual, expected in _helper_results(spark):
            assert_df_equality(actual, expected, ignore_nullable=True)
        bronze = bronze_frame(
            spark,
            "programmes",
            [
                {"id": 9223372036854775808, "name": "n", "duration": 2147483648, "description": "d"},
                {"id": "7", "name": 5, "duration": 1.5, "description": None},
            ],
        )
        rows = (
            bronze.transform(validate_records(spec_of("programmes")))
            .select("programme_id", "duration", "reasons")
            .collect()
        )
    assert [tuple(r) for r in rows] == [
        (None, None, ["wrong_type:id", "wrong_type:duration"]),
        (None, None, ["wrong_type:id", "wrong_type:name", "wrong_type:duration", "null_value:description"]),
    ]


def test_nfc_stable_ranges_hold_no_character_that_nfc_can_change():
    """Every character NFC may change, reorder or compose is outside the ranges that skip Python."""
    unsafe = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))  # Hangul vowels and finals compose
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        if unicodedata.combining(char) or unicodedata.normalize("NFC", char) != char:
            unsafe.add(code)
        decomposition = unicodedata.decomposition(char)
        if decomposition and not decomposition.startswith("<") and len(decomposition.split()) == 2:
            unsafe.add(int(decomposition.split()[1], 16))
    inside = [hex(c) for c in unsafe if any(lo <= c <= hi for lo, hi in NFC_STABLE_RANGES)]
    assert inside == []
    assert 0x0301 in unsafe and 0x00E9 not in unsafe  # sanity: a combining acute is unsafe, é is not


def test_may_change_under_nfc_flags_each_character_outside_the_stable_ranges_and_none_inside(spark):
    points = {0x7F, 0x80, 0x10FFFF}
    for lo, hi in NFC_STABLE_RANGES:
        points |= {lo - 1, lo, hi, hi + 1}
    points = sorted(p for p in points if 0 <= p <= 0x10FFFF and not 0xD800 <= p <= 0xDFFF)
    expected = [(chr(p), not any(lo <= p <= hi for lo, hi in NFC_STABLE_RANGES)) for p in points]
    frame = spark.createDataFrame([("ab" + c + "cd", flag) for c, flag in expected], "s string, flag boolean")
    assert_df_equality(frame.select("s", may_change_under_nfc(F.col("s")).alias("flag")), frame, ignore_nullable=True)


def test_may_change_under_nfc_flags_only_text_outside_the_stable_ranges(spark):
    pairs = [
        ("Zoë Łukasz Nguyễn Thị – O'Brien", False),
        ("さくら 佐藤 지우 데이터 🎉 ☁️", False),
        ("Zoe\u0301", True),
        ("\u1100\u1161", True),
        ("\u212b", True),
        ("", False),
        (None, False),
    ]
    frame = spark.createDataFrame(pairs, "s string, flag boolean")
    assert_df_equality(frame.select("s", may_change_under_nfc(F.col("s")).alias("flag")), frame, ignore_nullable=True)


def test_normalize_unicode_composes_flagged_rows_and_leaves_the_rest(spark):
    schema = T.StructType(
        [
            T.StructField("project_id", T.LongType()),
            T.StructField("title", T.StringType()),
            T.StructField("description", T.StringType()),
            T.StructField("status", T.StringType()),
            T.StructField("needs_nfc", T.BooleanType()),
        ]
    )
    rows = [
        (1, "Cafe\u0301", "A\u030a", "pending", True),
        (2, "\u1100\u1161", "x", "graded", True),
        (3, "plain", "already é", "pending", False),
        (4, "left alone e\u0301", "-", "pending", False),
    ]
    expected = [
        (1, "Café", "Å", "pending", True),
        (2, "가", "x", "graded", True),
        (3, "plain", "already é", "pending", False),
        (4, "left alone e\u0301", "-", "pending", False),
    ]
    actual = spark.createDataFrame(rows, schema).transform(normalize_unicode(spec_of("projects")))
    assert_df_equality(actual, spark.createDataFrame(expected, schema), ignore_row_order=True)


def test_clean_apprenticeships_trims_normalises_and_parses(spark):
    records = [
        {
            "id": 1,
            "name": " Data Fellowship – Acme\t",
            "programme_id": 7,
            "modified_date": " 2024-03-05T10:21:33 ",
            "first_name": "\u00a0Zoe\u0301",
            "last_name": "O'Brien\n",
            "email_address": "  Zoe.OBrien@Example.ORG ",
        },
        {
            "id": 2,
            "name": "n",
            "programme_id": 7,
            "modified_date": "2024-03-05T10:21:33",
            "first_name": "A",
            "last_name": "B",
            "email_address": "not-an-email",
        },
        {
            "id": 3,
            "name": "データ分析 🎉",
            "programme_id": 99,
            "modified_date": "2023-01-01T00:00:00",
            "first_name": "さくら",
            "last_name": "佐藤",
            "email_address": "sakura.sato@example.org",
        },
        {
            "id": "A-4",
            "name": "x",
            "programme_id": 7,
            "modified_date": "2024-02-30T25:61:00",
            "first_name": "A",
            "last_name": "B",
            "email_address": "a@b.org",
        },
    ]
    actual = bronze_frame(spark, "apprenticeships", records).transform(cleaned(spec_of("apprenticeships")))
    march = dt.datetime(2024, 3, 5, 10, 21, 33, tzinfo=UTC)
    expected = spark.createDataFrame(
        [
            (
                *lineage(0),
                1,
                "Data Fellowship – Acme",
                7,
                march,
                "Zoé",
                "O'Brien",
                "zoe.obrien@example.org",
                True,
                True,
                "1",
                None,
                [],
                0,
            ),
            (*lineage(1), 2, "n", 7, march, "A", "B", "not-an-email", False, False, "2", None, [], 1),
            (
                *lineage(2),
                3,
                "データ分析 🎉",
                99,
                dt.datetime(2023, 1, 1, tzinfo=UTC),
                "さくら",
                "佐藤",
                "sakura.sato@example.org",
                True,
                False,
                "3",
                None,
                [],
                2,
            ),
            (
                *lineage(3),
                None,
                "x",
                7,
                None,
                "A",
                "B",
                "a@b.org",
                True,
                False,
                "A-4",
                compact(records[3]),
                ["wrong_type:id", "unparseable_date:modified_date"],
                3,
            ),
        ],
        CLEAN_SCHEMAS["apprenticeships"],
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_clean_projects_takes_the_parent_from_the_page_and_lower_cases_status(spark):
    records = [
        {
            "id": 1,
            "title": "  Capstone – Données clients ",
            "description": "Line one.\nLine two.\n",
            "status": " Graded ",
        },
        {"id": 2, "title": "t", "description": "", "status": "in_review"},
        {"id": 3, "title": "t", "description": "d", "status": "pending"},
    ]
    actual = bronze_frame(spark, "projects", records, parents=[10, 10, None]).transform(cleaned(spec_of("projects")))
    expected = spark.createDataFrame(
        [
            (
                *lineage(0, 10, "projects"),
                10,
                1,
                "Capstone – Données clients",
                "Line one.\nLine two.",
                "graded",
                False,
                "1",
                None,
                [],
                0,
            ),
            (
                *lineage(1, 10, "projects"),
                10,
                2,
                "t",
                "",
                "in_review",
                False,
                "2",
                compact(records[1]),
                ["unknown_status:status"],
                1,
            ),
            (
                *lineage(2, None, "projects"),
                None,
                3,
                "t",
                "d",
                "pending",
                False,
                "3",
                compact(records[2]),
                ["missing_parent:apprenticeship_id"],
                2,
            ),
        ],
        CLEAN_SCHEMAS["projects"],
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_clean_programmes_checks_duration(spark):
    records = [
        {"id": 7, "name": " Data Analyst – Level 4 ", "duration": 15, "description": "Learn."},
        {"id": 8, "name": "n", "duration": "12 months", "description": "d"},
        {"id": 9, "name": "n", "duration": -1, "description": "d"},
    ]
    actual = bronze_frame(spark, "programmes", records).transform(cleaned(spec_of("programmes")))
    expected = spark.createDataFrame(
        [
            (*lineage(0, None, "programmes"), 7, "Data Analyst – Level 4", 15, "Learn.", False, "7", None, [], 0),
            (
                *lineage(1, None, "programmes"),
                8,
                "n",
                None,
                "d",
                False,
                "8",
                compact(records[1]),
                ["wrong_type:duration"],
                1,
            ),
            (
                *lineage(2, None, "programmes"),
                9,
                "n",
                -1,
                "d",
                False,
                "9",
                compact(records[2]),
                ["negative_value:duration"],
                2,
            ),
        ],
        CLEAN_SCHEMAS["programmes"],
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_cleaning_an_empty_page_gives_an_empty_frame_of_the_cleaned_shape(spark):
    actual = bronze_frame(spark, "projects", []).transform(cleaned(spec_of("projects")))
    assert_df_equality(actual, spark.createDataFrame([], CLEAN_SCHEMAS["projects"]))


def test_a_value_spark_could_not_read_takes_its_json_type_from_the_text(spark):
    """`from_json` gives null for a JSON null and for a value it cannot turn into text (on Spark 4: an object
    nested deeper than 1,000 levels); only the first is a null."""
    rows = [
        ('{"id":1,"name":null}', "null"),
        ('{"id":1,"name":{"a":{"b":1}}}', "other"),
        ('{"id":1,"name":[[1]]}', "other"),
        ('{"id":1}', "missing"),
    ]
    frame = spark.createDataFrame([(raw, KIND[kind]) for raw, kind in rows], "raw string, expected int")
    unreadable = F.lit(None).cast("string")  # what from_json gave for the field
    got = frame.select("raw", json_token_kind(F.col("raw"), "name", unreadable).alias("expected"))
    assert_df_equality(got, frame, ignore_nullable=True, ignore_row_order=True)


def test_spaced_json_gets_the_json_type_of_each_value_as_written(spark):
    """With the value as `from_json` read it (the production path), spaces after the colon do not change a type:
    a quoted id is a string, a bare number a number, an unquoted word or an object something else."""
    rows = [  # raw text, the value as from_json reads it into a string field, the type the text gives
        ('{"id": "1", "name": "Ada"}', "1", "string"),
        ('{"id": 1, "name": "Ada"}', "1", "number"),
        ('{"id":\t-7 ,"name":"Ada"}', "-7", "number"),
        ('{"id" : true}', "true", "other"),
        ('{"id":\n{"a": 1}}', '{"a":1}', "other"),
        ('{"id":"x"}', "x", "string"),
        ('{"id":12}', "12", "number"),
        ('{"id":[1]}', "[1]", "other"),
    ]
    frame = spark.createDataFrame([(r, v, KIND[k]) for r, v, k in rows], "raw string, value string, expected int")
    got = frame.select("raw", "value", json_token_kind(F.col("raw"), "id", F.col("value")).alias("expected"))
    assert_df_equality(got, frame, ignore_nullable=True, ignore_row_order=True)


def test_the_validation_expressions_are_built_once_per_session_and_validate_any_rows_after(spark):
    """The second validation of an entity in a session reuses the first one's expressions (no Py4J round trips to
    build them again), and the reused expressions give each frame its own verdicts."""
    from multiverse_etl.transform import clean

    spec = spec_of("programmes")
    good = {"id": 1, "name": "Data", "duration": 12, "description": "d"}
    bad = {"id": 2, "name": None, "duration": -1, "description": "d"}
    first = bronze_frame(spark, "programmes", [good]).transform(validate_records(spec))
    built = {key: value for key, value in clean._SESSION_COLUMNS.items() if spec in key}
    assert {key[0] for key in built} == {"parse", "typed", "verdict"}
    second = bronze_frame(spark, "programmes", [bad]).transform(validate_records(spec))
    assert all(clean._SESSION_COLUMNS[key] is value for key, value in built.items())  # reused, not rebuilt
    assert [list(r.reasons) for r in first.collect()] == [[]]
    assert [sorted(r.reasons) for r in second.collect()] == [["negative_value:duration", "null_value:name"]]


def test_key_follower_is_the_byte_after_the_first_key_or_empty(spark):
    """The byte after the first `"id":` (the JSON type `json_token_kind` reads), by byte offset: text before the key
    that takes several bytes a character does not shift it."""
    rows = [
        ('{"id":12,"name":"x"}', bytearray(b"1")),
        ('{"id":"12"}', bytearray(b'"')),
        ('{"n":"é😀","id":-3}', bytearray(b"-")),  # 2- and 4-byte characters before the key
        ('{"x":{"id":true},"id":5}', bytearray(b"t")),  # the first occurrence, at any depth
        ('{"id": 5}', bytearray(b" ")),
        ('{"idx":5}', bytearray(b"")),  # another key
        ('{"id":', bytearray(b"")),  # the key ends the text
        ("", bytearray(b"")),
        (None, None),
    ]
    schema = T.StructType([T.StructField("raw", T.StringType()), T.StructField("after", T.BinaryType())])
    frame = spark.createDataFrame(rows, schema)
    assert_df_equality(frame.select("raw", key_follower(F.col("raw"), "id").alias("after")), frame)


COMPACT_FIELDS = (("id", "integer"), ("name", "string"), ("age", "integer"))


def test_is_compact_record_only_for_the_fields_in_order_without_quotes_or_backslashes(spark):
    """True only when the text is the compact JSON of the values as read, in the fields' order: then every string field
    is a string and every integer field a number, each key once, no escape anywhere."""
    rows = [  # raw text, the values as from_json reads them (id, name, age), expected
        ('{"id":1,"name":"Ada","age":36}', "1", "Ada", "36", True),
        ('{"id":-1,"name":"","age":0}', "-1", "", "0", True),
        ('{"id":1,"name":"Zoë 😀","age":36}', "1", "Zoë 😀", "36", True),
        ('{"id":1,"name":"Ada","age":1.5}', "1", "Ada", "1.5", True),  # a number; its value is checked later
        ('{"id":1, "name":"Ada","age":36}', "1", "Ada", "36", False),  # a space
        ('{"name":"Ada","id":1,"age":36}', "1", "Ada", "36", False),  # another order
        ('{"id":1,"name":"A\\"da","age":36}', "1", 'A"da', "36", False),  # an escape
        ('{"id":1,"name":"Ada","age":36,"x":1}', "1", "Ada", "36", False),  # an extra field
        ('{"id":"1","name":"Ada","age":36}', "1", "Ada", "36", False),  # a quoted number
        ('{"id":true,"name":"Ada","age":36}', "true", "Ada", "36", False),
        (r'{"id":1,"name":"A\"d","age":36}', "1", 'A"d', "36", False),  # a value holding a quote
        ('{"id":1,"name":"A"d","age":36}', "1", 'A"d', "36", False),  # the same, the text rebuilt from it
        ('{"id":1,"name":"A\\d","age":36}', "1", "A\\d", "36", False),  # a value holding a backslash
        ('{"id":1,"name":null,"age":36}', "1", None, "36", None),
    ]
    schema = "raw string, id string, name string, age string, expected boolean"
    frame = spark.createDataFrame(rows, schema)
    fields = [(name, json_type, F.col(name)) for name, json_type in COMPACT_FIELDS]
    got = frame.select("raw", "id", "name", "age", is_compact_record(F.col("raw"), fields).alias("expected"))
    assert_df_equality(got, frame, ignore_nullable=True, ignore_row_order=True)


def test_compact_records_get_the_json_types_the_searches_give(spark):
    """`is_compact_record` stands in for `json_token_kind` (and the lone-surrogate search) on compact text: for every
    compact record here, the searches give each string field "string" and each integer field "number"."""
    rows = [
        '{"id":1,"name":"Ada","age":36}',
        '{"id":12345678901234567890,"name":"id","age":-0.5}',
        '{"id":1,"name":"age:","age":2}',
        '{"id":1,"name":"{\\"age\\":\\"x\\"}","age":2}',  # not compact: escapes
    ]
    schema = T.StructType([T.StructField(n, T.StringType()) for n, _ in COMPACT_FIELDS])
    frame = spark.createDataFrame([(r,) for r in rows], "raw string").withColumn("v", F.from_json("raw", schema))
    fields = [(name, json_type, F.col("v")[name]) for name, json_type in COMPACT_FIELDS]
    kinds = [json_token_kind(F.col("raw"), n, F.col("v")[n]).alias(n) for n, _ in COMPACT_FIELDS]
    got = frame.select(is_compact_record(F.col("raw"), fields).alias("compact"), *kinds).collect()
    assert [r.compact for r in got] == [True, True, True, False]
    assert all((r.id, r.name, r.age) == (KIND_NUMBER, KIND_STRING, KIND_NUMBER) for r in got if r.compact)


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_source_timestamps_are_utc_instants_in_any_session_zone(spark, zone):
    """A UTC session reads them with Spark's cast, any other zone with the pattern: the same UTC instants (a time in
    New York's spring-forward gap included), the same nulls for impossible dates and times, never an ANSI error."""
    texts = ["2024-03-05T10:21:33", "2024-02-29T23:59:59", "2024-03-10T02:30:00", "0000-01-01T00:00:00"]
    texts += ["2023-02-29T00:00:00", "2024-13-01T00:00:00", "2024-01-01T24:00:00", "2024-01-01T23:59:60", None]
    with spark_conf(spark, "spark.sql.session.timeZone", zone), spark_conf(spark, "spark.sql.ansi.enabled", "true"):
        got = [
            r[0]
            for r in one_column(spark, texts).select(F.unix_timestamp(parse_source_timestamp(F.col("s")))).collect()
        ]
    utc = [int(dt.datetime.fromisoformat(t).replace(tzinfo=UTC).timestamp()) for t in texts[:3]]
    assert got == [*utc, -62167219200, None, None, None, None, None]  # 0000-01-01: 1 BC, proleptic Gregorian


ORIGINAL_EMAIL_PATTERN = (  # the backtracking form EMAIL_PATTERN replaced (the same addresses)
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\z"
)


def test_the_email_pattern_accepts_exactly_the_addresses_of_its_backtracking_form(spark):
    label63, label64 = "a" + "b" * 61 + "c", "a" + "b" * 62 + "c"
    texts = [e for _, e, _ in EMAILS if e is not None]
    texts += [f"x@{label63}.com", f"x@{label64}.com", f"x@{label63}.{label63}.org", "x@a.b.cc", "x@a-.com"]
    texts += ["x@a--b.com", "x@-.com", "x@a.com-", "x@a.c0m", "x@1.23", "x@a." + "z" * 63, "x@a." + "z" * 64]
    texts += ["x.y.z@a.bc", "x@.a.bc", "x@a..bc", "@a.bc", "x@a.bc.", "x@a.b-c.de", "x@a.b.c-.de", "x!#$@a.bc"]
    frame = one_column(spark, texts)
    got = frame.select(
        is_valid_email(F.col("s")).alias("new"), (F.col("s").rlike(ORIGINAL_EMAIL_PATTERN)).alias("old"), "s"
    ).collect()
    assert [(r.s, r.new) for r in got] == [(r.s, r.old and len(r.s) <= 254) for r in got]
    assert sum(r.new for r in got) >= 8


def test_reasons_are_empty_for_a_valid_record_and_every_broken_rule_otherwise(spark):
    """`contract_reasons` builds its array only when a rule is broken (an `or` of the conditions first): a valid
    record gets the empty array (never null), others every reason in the contract's order, whatever the kind of
    record (a non-object and an unreadable record get their one reason)."""
    records = [
        {"id": 1, "name": "Data", "duration": 12, "description": "d"},
        {"id": "2", "name": None, "duration": -3},
        {"id": 3, "name": 5, "duration": 1.5, "description": "\u00e9"},
        Raw("[1,2]"),
        Raw('{"id":4,"name":"n","duration":' + "7" * 100_001 + ',"description":"d"}'),
    ]
    got = bronze_frame(spark, "programmes", records).transform(validate_records(spec_of("programmes")))
    expected = spark.createDataFrame(
        [
            (1, []),
            (2, ["wrong_type:id", "null_value:name", "negative_value:duration", "missing_field:description"]),
            (3, ["wrong_type:name", "wrong_type:duration"]),
            (4, ["not_a_json_object"]),
            (5, ["unreadable_record"]),
        ],
        T.StructType(
            [
                T.StructField("record", T.IntegerType(), False),
                T.StructField("reasons", T.ArrayType(T.StringType(), True), False),
            ]
        ),
    )
    assert_df_equality(
        got.select((F.col("record_index") + 1).alias("record"), "reasons"),
        expected,
        ignore_nullable=True,
        ignore_row_order=True,
    )
