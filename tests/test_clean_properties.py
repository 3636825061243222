"""Property-based tests (hypothesis) of the transform's cleaning functions on arbitrary unicode and arbitrary records.

Each property is checked against an independent Python reference (str.strip, unicodedata,
re, int(), datetime.strptime, json). One hypothesis example is one batch of up to 150 values
checked in one Spark job, so a few examples cover hundreds of values per property in seconds.
ANSI mode is switched on where a cast could raise (Spark 4 / Glue 6's default, the strict case;
tests/test_clean.py checks fixed cases in both modes).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from multiverse_etl.entities import entity as spec_of
from multiverse_etl.transform.clean import (
    KIND_MISSING,
    KIND_NULL,
    KIND_NUMBER,
    KIND_OTHER,
    KIND_STRING,
    clean_email,
    is_valid_email,
    json_token_kind,
    may_change_under_nfc,
    normalize_unicode,
    parse_source_timestamp,
    to_integer,
    trim_text,
    validate_records,
)
from support.landed import bronze_frame, spark_conf

# The references below are written from docs/source-api.md, docs/transform.md and Unicode, not taken from the code.
# Unicode's White_Space property: U+0009-U+000D, U+0020, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
# U+202F, U+205F, U+3000.
WHITE_SPACE = "".join(
    chr(c)
    for c in [
        *range(0x09, 0x0E),
        0x20,
        0x85,
        0xA0,
        0x1680,
        *range(0x2000, 0x200B),
        0x2028,
        0x2029,
        0x202F,
        0x205F,
        0x3000,
    ]
)
# docs/transform.md: an RFC 5322 dot-atom local part, a DNS domain with a TLD of 2-63 letters, ASCII, <= 254 characters.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
PY_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[a-z]{{2,63}}")
EMAIL_MAX_LENGTH = 254
# docs/source-api.md: the fields of each entity and their JSON types ("timestamp": modified_date's format).
CONTRACT = {
    "apprenticeships": (
        ("id", "integer"),
        ("name", "string"),
        ("programme_id", "integer"),
        ("modified_date", "timestamp"),
        ("first_name", "string"),
        ("last_name", "string"),
        ("email_address", "string"),
    ),
    "projects": (("id", "integer"), ("title", "string"), ("description", "string"), ("status", "string")),
    "programmes": (("id", "integer"), ("name", "string"), ("duration", "integer"), ("description", "string")),
}

PROPERTY = settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# Arbitrary unicode (no surrogates: they cannot be UTF-8), with the source's troublemakers drawn often.
TRICKY = list(WHITE_SPACE) + [
    "\u0301",
    "\u0308",
    "\u1100",
    "\u1161",
    "\u11a8",
    "\u212b",
    "\u2126",
    "e",
    "E",
    "İ",
    "ß",
    "Σ",
    "ς",
    "\ufb01",
    "'",
    '"',
    "\\",
    ",",
    ":",
    "{",
    "}",
    "@",
    "\x00",
    "😀",
    "\u200d",
    "ﬀ",
]
CHARS = st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(TRICKY))
TEXT = st.text(CHARS, max_size=24)
BATCH = st.lists(TEXT, min_size=1, max_size=150)

PY_INTEGER = re.compile(r"-?[0-9]{1,19}\Z")
PY_TIMESTAMP_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\Z")
FORMAT = "yyyy-MM-dd'T'HH:mm:ss"


def strip(text):
    return None if text is None else text.strip(WHITE_SPACE)


def nfc(text):
    return None if text is None else unicodedata.normalize("NFC", text)


def column_frame(spark, values):
    return spark.createDataFrame([(i, v) for i, v in enumerate(values)], "i int, s string")


# ---------------------------------------------------------------- text


@PROPERTY
@given(values=BATCH)
def test_trim_and_email_cleaning_of_arbitrary_unicode(spark, values):
    rows = (
        column_frame(spark, values + [None])
        .select("i", trim_text(F.col("s")).alias("trimmed"), clean_email(F.col("s")).alias("email"))
        .select("*", is_valid_email(F.col("email")).alias("valid"))
        .orderBy("i")
        .collect()
    )
    for value, row in zip(values + [None], rows):
        assert row.trimmed == strip(value)  # exactly str.strip over Unicode White_Space: nothing more, nothing less
        if value is None:
            assert row.email is None and row.valid is None
            continue
        email = row.email
        assert email == email.strip(WHITE_SPACE) and len(email) <= len(strip(value)) * 3
        if strip(value).isascii():
            assert email == strip(value).lower()
        # valid means: ASCII, matches the documented pattern, at most 254 characters (whatever Java's lower-casing did)
        assert row.valid == bool(PY_EMAIL.fullmatch(email) and len(email) <= EMAIL_MAX_LENGTH)
        if row.valid:
            assert email.isascii() and email == email.lower() and email.count("@") == 1


@PROPERTY
@given(values=BATCH)
def test_text_that_is_not_flagged_for_nfc_is_already_nfc(spark, values):
    """The flag that keeps text away from the Python UDF is sound: unflagged text never changes under NFC."""
    rows = (
        column_frame(spark, values).select("i", may_change_under_nfc(F.col("s")).alias("flag")).orderBy("i").collect()
    )
    for value, row in zip(values, rows):
        if not row.flag:
            assert nfc(value) == value, ascii(value)


# ---------------------------------------------------------------- numbers and dates

INTEGER_TEXT = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.integers(min_value=-(2**63) - 2, max_value=-(2**63) + 2).map(str),
    st.integers(min_value=2**63 - 2, max_value=2**63 + 2).map(str),
    st.integers(min_value=-(2**31) - 2, max_value=2**31 + 2).map(str),
    st.builds(lambda z, n: "0" * z + str(n), st.integers(0, 20), st.integers(0, 10**6)),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["+1", " 1", "1 ", "1e3", "0x10", "١٢٣", "１２", "-", "", "--1", "1_000", "٣", "9" * 19, "-" + "9" * 19]
    ),
    TEXT,
)


def test_integer_text_becomes_exactly_its_value_or_null_and_never_an_error(spark):
    ansi = "true"  # the strict mode (Spark 4's default); both modes on fixed cases: tests/test_clean.py

    @PROPERTY
    @given(values=st.lists(INTEGER_TEXT, min_size=1, max_size=150))
    def check(values):
        with spark_conf(spark, "spark.sql.ansi.enabled", ansi):
            rows = (
                column_frame(spark, values)
                .select("i", to_integer(F.col("s")).alias("big"), to_integer(F.col("s"), "int").alias("small"))
                .orderBy("i")
                .collect()
            )
        for value, row in zip(values, rows):
            number = int(value) if PY_INTEGER.match(value) else None
            assert row.big == (number if number is not None and -(2**63) <= number < 2**63 else None), value
            assert row.small == (number if number is not None and -(2**31) <= number < 2**31 else None), value

    check()


def _timestamp_like(draw_digits):
    y, mo, d, h, mi, s = draw_digits
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"


TIMESTAMP_TEXT = st.one_of(
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S").zfill(19)
    ),
    st.tuples(
        st.integers(0, 9999),
        st.integers(0, 19),
        st.integers(0, 39),
        st.integers(0, 29),
        st.integers(0, 69),
        st.integers(0, 69),
    ).map(_timestamp_like),
    st.sampled_from(
        [
            "2024-02-29T12:00:00",
            "2023-02-29T12:00:00",
            "2024-02-30T25:61:00",
            "31/12/2023 14:05",
            "not a date",
            "2024-03-05T10:21:33Z",
            "2024-03-05 10:21:33",
            "2024-03-05T10:21:33.5",
            "2024-3-5T1:2:3",
            "\u00a02024-03-05T10:21:33\n",
            "2024-03-05T10:21:33\n",
            "0000-01-01T00:00:00",
            "２０２４-03-05T10:21:33",
        ]
    ),
    TEXT,
)


def reference_timestamp(text):
    """The contract's only format, a real calendar instant; surrounding whitespace is trimmed first (as clean does)."""
    text = strip(text)
    if not PY_TIMESTAMP_SHAPE.match(text):
        return None
    # Year 0000 is 1 BC in the proleptic Gregorian calendar Spark uses (a leap year, like 2000); Python stops at year 1.
    year = "2000" if text[:4] == "0000" else text[:4]
    try:
        dt.datetime.strptime(year + text[4:], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return text


def test_only_real_source_timestamps_parse_and_they_round_trip(spark):
    ansi = "true"

    @PROPERTY
    @given(values=st.lists(TIMESTAMP_TEXT, min_size=1, max_size=150))
    def check(values):
        with spark_conf(spark, "spark.sql.ansi.enabled", ansi):
            parsed = parse_source_timestamp(trim_text(F.col("s")))
            rows = (
                column_frame(spark, values)
                .select("i", F.date_format(parsed, FORMAT).alias("ts"))
                .orderBy("i")
                .collect()
            )
        for value, row in zip(values, rows):
            assert row.ts == reference_timestamp(value), ascii(value)

    check()


# ---------------------------------------------------------------- JSON token kinds

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.sampled_from(['","id":1', "\\", '\\"', '"id":"x"', ', "id" : 5', '{"status":"graded"}']),
)
FLAT_VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))
FIELDS = sorted({name for fields in CONTRACT.values() for name, _ in fields})


def kind_name(record, name):
    if name not in record:
        return "missing"
    value = record[name]
    if value is None:
        return "null"
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        return "other"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


KINDS = {"string": KIND_STRING, "number": KIND_NUMBER, "null": KIND_NULL, "missing": KIND_MISSING, "other": KIND_OTHER}


def kind_of(record, name):
    """The JSON type `json_token_kind` gives (a small integer)."""
    return KINDS[kind_name(record, name)]


RECORDS = st.dictionaries(st.one_of(st.sampled_from(FIELDS), TEXT), FLAT_VALUES, max_size=9)


@PROPERTY
@given(records=st.lists(st.tuples(RECORDS, st.booleans(), st.booleans()), min_size=1, max_size=80))
def test_the_json_type_of_every_top_level_field_is_read_off_the_raw_text(spark, records):
    """Records as any encoder may write them (ASCII escapes or not, spaces or not); values full of quotes and keys."""
    texts = [
        json.dumps(r, ensure_ascii=ascii_only, separators=(", ", " : ") if spaced else (",", ":"))
        for r, ascii_only, spaced in records
    ]
    frame = column_frame(spark, texts).withColumn(
        "parsed", F.from_json("s", ", ".join(f"`{n}` string" for n in FIELDS))
    )
    rows = (
        frame.select(
            "i",
            *[json_token_kind(F.col("s"), name).alias(name) for name in FIELDS],
            # The transform's form: compact text is settled by the value from_json read (no regex).
            *[json_token_kind(F.col("s"), name, F.col("parsed")[name]).alias(f"{name}_with_value") for name in FIELDS],
        )
        .orderBy("i")
        .collect()
    )
    for (record, _, _), text, row in zip(records, texts, rows):
        for name in FIELDS:
            assert row[name] == kind_of(record, name), (name, text)
            assert row[f"{name}_with_value"] == kind_of(record, name), (name, text)


# ---------------------------------------------------------------- whole records through the cleaning step

INTEGER_FIELD = st.one_of(
    st.integers(min_value=-(2**66), max_value=2**66),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
STRING_FIELD = st.one_of(TEXT, TEXT, st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans())
DATE_FIELD = st.one_of(TIMESTAMP_TEXT, st.integers())
MISSING = object()


def field_value(strategy):
    return st.one_of(strategy, strategy, strategy, st.none(), st.just(MISSING))


APPRENTICESHIP = st.fixed_dictionaries(
    {
        "id": field_value(INTEGER_FIELD),
        "name": field_value(STRING_FIELD),
        "programme_id": field_value(INTEGER_FIELD),
        "modified_date": field_value(DATE_FIELD),
        "first_name": field_value(STRING_FIELD),
        "last_name": field_value(STRING_FIELD),
        "email_address": field_value(st.one_of(STRING_FIELD, st.emails())),
    }
).map(lambda r: {k: v for k, v in r.items() if v is not MISSING})


def reference_reasons(record):
    reasons = []
    for name, json_type in CONTRACT["apprenticeships"]:
        kind = kind_name(record, name)
        value = record.get(name)
        reasons += [f"missing_field:{name}"] if kind == "missing" else []
        reasons += [f"null_value:{name}"] if kind == "null" else []
        if json_type == "integer":
            wrong = kind in ("string", "other") or (
                kind == "number" and not (isinstance(value, int) and -(2**63) <= value < 2**63)
            )
        else:
            wrong = kind in ("number", "other")
        reasons += [f"wrong_type:{name}"] if wrong else []
        if json_type == "timestamp" and kind == "string" and reference_timestamp(value) is None:
            reasons.append(f"unparseable_date:{name}")
    return reasons


def text_or_none(record, name):
    value = record.get(name)
    return value if isinstance(value, str) else None


def test_cleaning_arbitrary_apprenticeship_records_agrees_with_a_python_reference(spark):
    """Any record: no error (ANSI on), every contract reason, and text trimmed then NFC, exactly like the reference."""
    ansi = "true"

    @settings(PROPERTY, max_examples=4)
    @given(records=st.lists(APPRENTICESHIP, min_size=1, max_size=80))
    def check(records):
        with spark_conf(spark, "spark.sql.ansi.enabled", ansi):
            # Both cleaning steps on every record (the transform normalises only the versions it keeps), so that
            # each generated record is checked against the reference, rejected ones and older versions included.
            spec = spec_of("apprenticeships")
            frame = (
                bronze_frame(spark, "apprenticeships", records)
                .transform(validate_records(spec))
                .transform(normalize_unicode(spec))
            )
            rows = (
                frame.select(
                    "record_index",
                    "apprenticeship_id",
                    "programme_id",
                    "name",
                    "first_name",
                    "last_name",
                    "email_address",
                    "email_is_valid",
                    "reasons",
                    "needs_nfc",
                    F.date_format("modified_date", FORMAT).alias("modified_date"),
                )
                .orderBy("record_index")
                .collect()
            )
        assert len(rows) == len(records)
        for record, row in zip(records, rows):
            assert list(row.reasons) == reference_reasons(record), record
            for name in ("name", "first_name", "last_name"):
                assert row[name] == nfc(strip(text_or_none(record, name))), (name, record)
            email = text_or_none(record, "email_address")
            if email is None:
                assert row.email_address is None
            else:
                assert row.email_address == nfc(row.email_address) and row.email_address == row.email_address.strip(
                    WHITE_SPACE
                )
                if strip(email).isascii():
                    assert row.email_address == strip(email).lower()
            for name in ("id", "programme_id"):
                value = record.get(name)
                ok = isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
                assert row["apprenticeship_id" if name == "id" else name] == (value if ok else None)
            date = text_or_none(record, "modified_date")
            assert row.modified_date == (reference_timestamp(date) if date is not None else None)

    check()


@pytest.mark.xfail(
    strict=True,
    reason="known limitation, in the README: the JSON type of a field is read off the "
    "first matching key at any depth; the API's records are flat, so only a nested object with a "
    "contract key name can mislead it",
)
def test_a_nested_object_does_not_hide_the_json_type_of_a_top_level_field(spark):
    """A contract key inside a nested object must not stand in for the record's own field.

    Known limitation (clean.json_token_kind): the kind is read off the first `"name":` in the text, at any depth,
    so here it sees the nested string "x" and the top-level number 7 is coerced to the name "7" and
    accepted as valid. Expected: wrong_type:name, as for the same record without the nested object.
    """
    from support.landed import Raw

    records = [
        Raw('{"meta":{"name":"x"},"id":3,"name":7,"duration":12,"description":"d"}'),
        Raw('{"id":3,"name":7,"duration":12,"description":"d"}'),
    ]
    rows = (
        bronze_frame(spark, "programmes", records)
        .transform(validate_records(spec_of("programmes")))
        .orderBy("record_index")
        .collect()
    )
    assert [list(r.reasons) for r in rows] == [["wrong_type:name"], ["wrong_type:name"]]
