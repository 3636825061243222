"""Differential check: `validate_records` of another revision against this checkout's, row by row.

The validation step's code (`transform/clean.py`, `transform/quarantine.py`) of `--base` (a git revision) is loaded
beside this checkout's; both validate the same bronze rows and every output column of every row is compared (both
ways, with `exceptAll`: a row that differs, appears twice or is missing on one side is a difference). The rows:

* generated hostile records of every entity (`--records` each, seeded): every JSON type in every field, spaced JSON,
  other key orders, duplicate and nested contract keys, keys inside strings, escaped quotes and backslashes, lone
  and paired surrogate escapes, ASCII-escaped or raw non-ASCII text, characters NFC changes, Unicode whitespace at
  the edges, numbers past 64 bits and of 100,001 digits, fractions, bad and long e-mail addresses, odd timestamps,
  unknown statuses, broken JSON and non-objects, the replica's poison records;
* `--bronze` folders of real bronze rows (Parquet, e.g. `bench/validation_cpu.py`'s), when given.

Each with ANSI mode off and on. Prints the differences found per case (0 is the only passing figure) and exits 1 on
any. Run it on each Spark line:

    .venv/bin/python bench/validation_diff.py --base HEAD~1 --bronze /tmp/bench-validation-cpu/bronze-200000
    .venv-spark4/bin/python bench/validation_diff.py --base HEAD~1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("quarantine", "clean")  # loaded in this order: the old clean imports the old quarantine


def load_base(revision: str) -> Any:
    """The `clean` module of `revision`, importing that revision's `quarantine` (both under private names)."""
    folder = Path(tempfile.mkdtemp(prefix="validation-diff-"))
    loaded = {}
    for name in MODULES:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{revision}:lib/multiverse_etl/transform/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        text = text.replace("from .quarantine import", "from ._base_quarantine import")
        path = folder / f"_base_{name}.py"
        path.write_text(text)
        spec = importlib.util.spec_from_file_location(f"multiverse_etl.transform._base_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        loaded[name] = module
    return loaded["clean"]


# ---------------------------------------------------------------- hostile records

TEXTS = [
    "Ada",
    "  Zoë\t",
    "\u00a0Seán\u3000",
    "e\u0301",  # a combining mark: NFC composes it
    "\u2000x\u2001",  # whitespace NFC replaces, at the edges
    "\u212b",  # Angstrom sign: NFC changes it
    "Zażółć gęślą jaźń – 2019–2023",
    "😀 emoji",
    "한국어 ᄀ",  # Hangul syllables and a jamo
    'a"b\\c',
    '","id":1',
    '"name":"x"',
    "line\nbreak\r\n",
    "\u0085",
    "",
    " ",
    "?",
    "x" * 300,
    "ﬁ ligature",
    "\u0344",
    "CJK 丽",
    "\ufb4f\ufe20",
    "\U0001d15e",  # a musical symbol NFC decomposes
]
EMAILS = [
    "ada@example.com",
    "  Ada.Lovelace@Example.CO.UK ",
    "a@b",
    "a@b.c",
    "a..b@example.com",
    ".a@example.com",
    "a@-example.com",
    "a@example-.com",
    "a@ex_ample.com",
    "zoë@example.com",
    "a@" + "b" * 64 + ".com",
    "a@" + ".".join(["b" * 60] * 4) + ".com",
    "x" * 250 + "@example.com",
    "a@example.c0m",
    "a+tag!#$%&'*/=?^_`{|}~-@example.org",
    "a@@example.com",
    "a@example..com",
    "\u212aelvin@example.com",  # Kelvin sign: lower-cases to k only after NFC
    "A\u0301@example.com",
    "",
]
STAMPS = [
    "2024-03-05T10:21:33",
    " 2024-03-05T10:21:33\n",
    "2024-02-29T23:59:59",
    "2023-02-29T00:00:00",
    "2024-13-01T00:00:00",
    "2024-00-10T00:00:00",
    "2024-01-32T00:00:00",
    "2024-01-01T24:00:00",
    "2024-01-01T23:60:00",
    "2024-01-01T23:59:60",
    "0000-01-01T00:00:00",
    "9999-12-31T23:59:59",
    "2024-03-05T10:21:33Z",
    "2024-03-05T10:21:33.5",
    "2024-03-05 10:21:33",
    "2024-03-05",
    "2024-3-5T1:2:3",
    "２０２４-03-05T10:21:33",
    "+2024-03-05T10:21:33",
    "2024-03-05T10:21:33+01:00",
    "",
]
STATUSES = ["pending", "submitted", "graded", " Graded ", "GRADED", "grad\u0301ed", "unknown", "", "pending\u00a0"]


def _number(rng: random.Random) -> Any:
    return rng.choice(
        [
            rng.randint(-5, 10**6),
            -(2**63),
            2**63 - 1,
            2**63,
            -(2**63) - 1,
            2**64,
            2**31,
            -(2**31) - 1,
            10**18,
            10**19 - 1,
            int("9" * 40),
            rng.random() * 100,
            1.0,
            -0.0,
            1e300,
            0,
            -1,
        ]
    )


def _value(rng: random.Random, json_type: str, role: str, hostility: float = 0.12) -> Any:
    """A value of any JSON type, mostly the right one, often hostile (`hostility`: how often of another type)."""
    roll = rng.random()
    if roll < hostility:
        return rng.choice([None, True, False, [], [1, "a"], {}, {"id": 1, "name": "x"}, "1", "12", "-3", "1.5", 7, 0.5])
    if json_type == "integer":
        if not hostility:
            return rng.randint(0, 10 ** rng.randint(1, 18))
        return _number(rng) if roll < 0.9 else str(_number(rng))
    if role == "email":
        return rng.choice(EMAILS[:2] if not hostility else EMAILS)
    if role == "timestamp":
        return rng.choice(STAMPS[:3] if not hostility else STAMPS)
    if role == "status":
        return rng.choice(STATUSES[:5] if not hostility else STATUSES)
    return rng.choice(TEXTS) + (rng.choice(TEXTS) if rng.random() < 0.3 else "")


LONE = ["\\ud800", "\\udfff", "\\uDBFF\\u0041", "\\udc00\\ud800", "\\\\ud800", "\\\\\\ud800", "\\ud83d\\ude00"]


def _encode(rng: random.Random, record: dict[str, Any]) -> str:
    """JSON text of `record` as some encoder might write it; sometimes with raw surrogate escapes spliced in."""
    spaced = rng.random() < 0.15
    text = json.dumps(
        record, ensure_ascii=rng.random() < 0.3, separators=(", ", " : ") if spaced else (",", ":"), allow_nan=False
    )
    if rng.random() < 0.12:  # a surrogate escape inside the first string literal after a key
        marker = rng.choice([m for m in ('":"', '": "', '" : "') if m in text] or ['"'])
        at = text.find(marker)
        if at >= 0:
            cut = at + len(marker)
            text = text[:cut] + rng.choice(LONE) + text[cut:]
    return text


def hostile_records(rng: random.Random, contract: list[tuple[str, str, str]], count: int) -> list[str]:
    out: list[str] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.03:
            out.append(
                rng.choice(
                    ["[1,2]", "null", '"x"', "7", "{", "", " ", '{"id":1,}', "{}", ' {"id":1}', '{"id":1} ', "{'id':1}"]
                )
            )
            continue
        record: dict[str, Any] = {}
        fields = list(contract)
        hostility = rng.choice([0.0, 0.0, 0.0, 0.02, 0.12, 0.3])  # about half the records valid
        if hostility and rng.random() < 0.25:
            rng.shuffle(fields)
        for name, json_type, role in fields:
            if hostility and rng.random() < hostility / 2:
                continue  # missing
            record[name] = _value(rng, json_type, role, hostility)
        if hostility and rng.random() < 0.1:
            record[rng.choice(["extra", "ID", "name2", "nested"])] = rng.choice(
                [{"id": "x"}, {"name": 5}, "id", [{"status": "graded"}], 1]
            )
        text = _encode(rng, record)
        if rng.random() < 0.05 and len(text) > 2:  # a duplicate contract key, first or last
            name, json_type, role = rng.choice(contract)
            extra = f'"{name}":{json.dumps(_value(rng, json_type, role))}'
            text = "{" + extra + "," + text[1:] if rng.random() < 0.5 else text[:-1] + "," + extra + "}"
        if rng.random() < 0.002:  # a number longer than the JSON reader takes
            text = '{"id":' + "7" * 100_001 + text[text.find(",") :] if "," in text else text
        out.append(text)
    return out


def _poison(entity: str) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from sample_api import poison

    rows = {"apprenticeships": poison.APPRENTICESHIPS, "projects": poison.PROJECTS, "programmes": poison.PROGRAMMES}
    return [r.decode() for r in rows[entity]]


# ---------------------------------------------------------------- comparison


def bronze_of(spark: Any, entity: str, texts: list[str]) -> Any:
    from multiverse_etl.transform.schemas import BRONZE_SCHEMA

    rows = [
        ("20261207T000000Z-diff", None, None, f"landing/{entity}.jsonl", 0, i, (i % 50) or None, text, i)
        for i, text in enumerate(texts)
    ]
    frame = spark.createDataFrame(
        rows,
        "run_id string, ingest_date date, extracted_at timestamp, landing_file "
        "string, page_index int, record_index int, parent_apprenticeship_id bigint, "
        "raw_record string, fingerprint bigint",
    )
    return frame.select(*[f.name for f in BRONZE_SCHEMA.fields])


def differences(bronze: Any, base: Callable[..., Any], new: Callable[..., Any], spec: Any) -> tuple[int, int, int]:
    old_rows = bronze.transform(base(spec)).cache()
    new_rows = bronze.transform(new(spec)).cache()
    try:
        if old_rows.schema.simpleString() != new_rows.schema.simpleString():
            print(f"  schemas differ:\n  {old_rows.schema.simpleString()}\n  {new_rows.schema.simpleString()}")
        valid = new_rows.filter("size(reasons) = 0").count()
        reasons = new_rows.selectExpr("explode(reasons)").distinct().count()
        nfc = new_rows.filter("needs_nfc").count()
        print(f"  (after: {valid:,} valid, {reasons} distinct reasons, {nfc:,} needing NFC)", end="")
        return old_rows.count(), old_rows.exceptAll(new_rows).count(), new_rows.exceptAll(old_rows).count()
    finally:
        old_rows.unpersist()
        new_rows.unpersist()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="git revision of the code to compare against")
    parser.add_argument("--records", type=int, default=20_000, help="hostile records per entity and seed")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--bronze", help="a folder of <entity>/ Parquet bronze rows to compare too")
    args = parser.parse_args()

    from pyspark.sql import SparkSession

    from multiverse_etl.entities import ENTITIES
    from multiverse_etl.transform import clean

    base = load_base(args.base)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "3g")
        .config("spark.sql.codegen.hugeMethodLimit", "8000")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    print(f"Spark {spark.version}; base {args.base}; this checkout {ROOT}")
    failed = 0
    try:
        for ansi in ("false", "true"):
            spark.conf.set("spark.sql.ansi.enabled", ansi)
            for spec in ENTITIES:
                contract = [(f.name, f.json_type, f.role) for f in spec.contract]
                cases = [
                    (
                        f"hostile seed {s}",
                        hostile_records(random.Random(s * 7919 + len(spec.name)), contract, args.records),
                    )
                    for s in range(args.seeds)
                ]
                cases.append(("poison", _poison(spec.name)))
                frames = [(label, bronze_of(spark, spec.name, texts)) for label, texts in cases]
                if args.bronze and (Path(args.bronze) / spec.name).exists():
                    frames.append((f"bronze {args.bronze}", spark.read.parquet(str(Path(args.bronze) / spec.name))))
                for label, bronze in frames:
                    rows, only_old, only_new = differences(bronze, base.validate_records, clean.validate_records, spec)
                    failed += only_old + only_new
                    print(
                        f"ansi {ansi:<5} {spec.name:<15} {label:<50} {rows:>9,} rows:"
                        f" {only_old} only before, {only_new} only after",
                        flush=True,
                    )
    finally:
        spark.stop()
    print("no difference" if not failed else f"{failed} differences")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
