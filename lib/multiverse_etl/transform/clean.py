"""Cleaning: raw record text → typed, normalised columns, the same on Spark 3.5 and 4.x (ANSI on or off).

Column helpers are pure Column → Column functions; `validate_records(spec)` and
`normalize_unicode(spec)` are DataFrame → DataFrame steps from bronze rows to the entity's cleaned
shape (`schemas.clean_schema`), ending with an explicit `select`. Each cleaned column is built by
the builder of its kind (`TypedColumn.kind` in entities.py). Nothing here can raise on bad data under ANSI mode: numbers are checked as
text before any cast, and timestamps are parsed only once their shape is right, with
`try_to_timestamp` and an explicit pattern. Contract checks (which records go to quarantine and
why) live in `quarantine.py` and are applied here, so one step gives every record its verdict.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Hashable, Optional, Sequence, TypeVar

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..entities import PARENT_COLUMN, EntitySpec, TypedColumn
from .quarantine import contract_reasons
from .schemas import (
    JSON_READ_LIMITS,
    KIND_MISSING,
    KIND_NULL,
    KIND_NUMBER,
    KIND_OTHER,
    KIND_STRING,
    LINEAGE_FIELDS,
    clean_schema,
    record_string_schema,
)

_T = TypeVar("_T")

# Unicode White_Space (what "surrounding whitespace" means in the source: spaces, tabs, newlines, NBSP).
WHITE_SPACE = (
    "\u0009\u000a\u000b\u000c\u000d\u0020\u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# A pragmatic address check on the lower-cased value (RFC 5322 dot-atom local part, DNS domain with a TLD).
# ASCII only: internationalised addresses are flagged invalid, not guessed at. Labels of 1-63 letters, digits and
# hyphens, neither first nor last a hyphen. Possessive quantifiers and no capturing group: the same addresses as
# `^atext+(\.atext+)*@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\z` (nothing a loop could give back can
# match what follows it: atext holds no dot or @, a label no dot, the TLD no dot), without backtracking (-25% CPU).
_ATEXT = "[a-z0-9!#$%&'*+/=?^_`{|}~-]"
EMAIL_PATTERN = rf"^{_ATEXT}++(?:\.{_ATEXT}++)*+@(?:(?!-)[a-z0-9-]{{1,63}}+(?<!-)\.)++[a-z]{{2,63}}\z"
EMAIL_MAX_LENGTH = 254
# The source's only timestamp format (contract: "2024-03-05T10:21:33", UTC, no zone, no fraction).
SOURCE_TIMESTAMP_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\z"
SOURCE_TIMESTAMP_PATTERN = "yyyy-MM-dd'T'HH:mm:ssX"  # parsed with a 'Z' appended: UTC whatever the session zone
_INTEGER_BOUNDS = {"bigint": (-(2**63), 2**63 - 1), "int": (-(2**31), 2**31 - 1)}


# ---------------------------------------------------------------- Column helpers


def has_clean_edges(col: Column) -> Column:
    """True when text starts and ends with a printable ASCII character (0x21-0x7F): nothing to trim.

    Byte comparisons, no scan of the text: it sorts between "!" and U+0080 exactly when its first byte is 0x21-0x7F,
    and the last byte of its UTF-8 bytes is 0x21-0x7F exactly when the last character is. Text starting or ending
    otherwise gives false, whitespace or not; null text gives null.
    """
    last = F.substring(col.cast(T.BinaryType()), -1, 1)
    return (
        (col >= F.lit("!"))
        & (col < F.lit("\u0080"))
        & (last >= F.lit(bytearray(b"!")))
        & (last < F.lit(bytearray(b"\x80")))
    )


def trim_text(col: Column) -> Column:
    """Strip surrounding Unicode whitespace (F.trim only strips ASCII spaces; the source has tabs, NBSP, newlines).

    Text with nothing to trim (`has_clean_edges`, most of it) is left as it is: Spark 3.5's `btrim` with a set of
    characters copies the text twice and looks each edge character up in the set, about three times the check's cost.
    """
    return F.when(has_clean_edges(col), col).otherwise(F.call_function("btrim", col, F.lit(WHITE_SPACE)))


def clean_email(col: Column) -> Column:
    """Trimmed and lower-cased: addresses are matched case-insensitively in practice."""
    return F.lower(trim_text(col))


def is_valid_email(col: Column) -> Column:
    """True when a cleaned address looks deliverable; null stays null.

    The length in bytes first (no scan of the text): the pattern takes ASCII only, so an address it takes has as
    many characters as bytes, and one of more bytes than the limit is refused with or without it.
    """
    return (F.octet_length(col) <= EMAIL_MAX_LENGTH) & col.rlike(EMAIL_PATTERN)


def parse_source_timestamp(col: Column) -> Column:
    """`2024-03-05T10:21:33` → timestamp (UTC); anything else → null, never an error.

    The shape check comes first so that Spark 3.5's default parser policy can never raise an
    'upgrade' error on text the legacy parser would have read differently. In a UTC session (every session
    `spark.py` builds) text of that shape is read by Spark's own string-to-timestamp cast, in its never-failing form
    (`try_to_timestamp` without a pattern), about a third of the cost of a pattern parse and the same instants (an
    impossible date or time is null either way); in any other session zone, by the pattern with a 'Z' appended.
    The session zone is a constant of the query (`current_timezone()`): the optimiser keeps one of the two.
    """
    in_utc_session = F.try_to_timestamp(col)
    anywhere = F.try_to_timestamp(F.concat(col, F.lit("Z")), F.lit(SOURCE_TIMESTAMP_PATTERN))
    parsed = F.when(F.current_timezone() == F.lit("UTC"), in_utc_session).otherwise(anywhere)
    return F.when(col.rlike(SOURCE_TIMESTAMP_SHAPE), parsed)


def to_integer(col: Column, type_name: str = "bigint") -> Column:
    """Integer text → bigint/int, else null, never an ANSI error.

    The text is checked before any cast: with fewer digits than the type can always hold, a plain
    cast; with more (leading zeros count), an exact decimal and a range check first.
    """
    low, high = _INTEGER_BOUNDS[type_name]
    safe_digits = len(str(high)) - 1  # 18 for bigint, 9 for int: any such number fits
    wide = col.cast(T.DecimalType(20, 0))
    return F.when(col.rlike(rf"^-?[0-9]{{1,{safe_digits}}}\z"), col.cast(type_name)).when(
        col.rlike(rf"^-?[0-9]{{{safe_digits + 1},19}}\z") & wide.between(low, high), wide.cast(type_name)
    )


def month_start(col: Column) -> Column:
    """The first day of a timestamp's month, as a date (a partition value)."""
    return F.trunc(F.to_date(col), "month")


def _check_field(field: str) -> None:
    if not field.replace("_", "").isalnum():
        raise ValueError(f"field name {field!r} cannot be used in a pattern")


_NUMBER_STARTS = tuple(bytearray(c.encode()) for c in "-0123456789")
_OTHER_STARTS = tuple(bytearray(c.encode()) for c in "tf{[")


def key_follower(raw: Column, field: str) -> Column:
    """The byte right after the first `"field":` in a record's text (binary; empty when the key is absent or ends it).

    Byte offsets, not character positions: `locate` and `substr` on text count the characters of the whole text,
    several times the cost of finding the key. A byte below 0x80 is the ASCII character of that code in UTF-8.
    """
    key = f'"{field}":'
    before = F.substring_index(raw, key, 1)  # the whole text when the key is absent
    return raw.cast(T.BinaryType()).substr(F.octet_length(before) + F.lit(len(key.encode()) + 1), F.lit(1))


def json_token_kind(raw: Column, field: str, value: Optional[Column] = None) -> Column:
    """The JSON type of `field` in a record's text: `KIND_STRING`, `KIND_NUMBER`, `KIND_NULL`, `KIND_MISSING` or
    `KIND_OTHER` (bool, object, array), small integers (`schemas.py`).

    Spark's `from_json` turns a number into text for a string field and vice versa, so the type
    is read from the raw text: the first character after `"field":`. A `"` can only appear
    unescaped at a token boundary, so a key inside a string value can never match (a key of the
    same name in a nested object can: that record breaks the contract anyway).

    `value`, the field as `from_json` read it into a string, settles compact JSON (what the API
    serves) without a regex: once `"field":` is found and is not followed by `"`, a non-null value
    starts with a digit or `-` for a number, and with anything else for true, false, an object or
    an array; a null one is settled by the pattern (JSON null, or a value Spark could not read).
    """
    _check_field(field)
    first = F.regexp_extract(raw, '"' + field + r'"\s*:\s*(.)', 1)
    # Compact JSON is settled by plain substring searches; the pattern covers the rest.
    kind = F.when(raw.contains(f'"{field}":"'), F.lit(KIND_STRING))
    if value is not None:
        # A null `value` is left to the pattern: JSON null, or a value Spark could not turn into text (Spark 4's
        # JSON writer refuses more than 1,000 levels of nesting, so a deeply nested object reads as null there).
        # The character right after `"field":` decides; whitespace there (spaced JSON) is left to the pattern too.
        after = key_follower(raw, field)
        kind = kind.when(value.isNotNull() & after.isin(*_NUMBER_STARTS), F.lit(KIND_NUMBER)).when(
            value.isNotNull() & after.isin(*_OTHER_STARTS), F.lit(KIND_OTHER)
        )
    return (
        kind.when(first == "", F.lit(KIND_MISSING))
        .when(first == '"', F.lit(KIND_STRING))
        .when(first.rlike(r"^[-0-9]\z"), F.lit(KIND_NUMBER))
        .when(first == "n", F.lit(KIND_NULL))
        .otherwise(F.lit(KIND_OTHER))
    )


# A JSON string literal's body, the unrolled loop with possessive quantifiers: no backtracking, and Java's regex
# engine iterates (never recurses) over a megabyte-long string.
_STRING_BODY = r'[^"\\]*+(?:\\.[^"\\]*+)*+'
_HIGH = r"[\\]u[dD][89abAB][0-9a-fA-F]{2}"
_LOW = r"[\\]u[dD][c-fC-F][0-9a-fA-F]{2}"
# A `\uD800`-`\uDBFF` escape not followed by a `\uDC00`-`\uDFFF` one, or one of those not preceded by the first
# kind; the escape itself is not escaped (an even run of backslashes before it).
LONE_SURROGATE_PATTERN = (
    rf"(?<![\\])(?:[\\]{{2}})*+{_HIGH}(?!{_LOW})"
    rf"|(?:(?<!{_HIGH})(?<![\\])|(?<![\\])(?:[\\]{{2}})++){_LOW}"
)


# A surrogate escape that is not half of a pair, whatever precedes it: true of a record's text whenever
# `LONE_SURROGATE_PATTERN` finds one in any of its string literals (a literal lies between quotes in the text, and
# neither a quote nor what precedes it can complete a pair), so one search of the record spares the per-field ones
# for all the text without such an escape (emoji are sent as pairs). Both branches start with a backslash.
SURROGATE_ESCAPE_PATTERN = (
    rf"[\\]u[dD](?:[89abAB][0-9a-fA-F]{{2}}(?!{_LOW})|[c-fC-F][0-9a-fA-F]{{2}}(?<!{_HIGH}{_LOW}))"
)


def may_hold_lone_surrogate(raw: Column) -> Column:
    """False when no string in a record's text can hold a lone surrogate escape (`has_lone_surrogate`'s `candidate`)."""
    return F.coalesce(raw.contains("\\u") & raw.rlike(SURROGATE_ESCAPE_PATTERN), F.lit(False))


def has_lone_surrogate(raw: Column, field: str, candidate: Optional[Column] = None) -> Column:
    """True when `field`'s JSON string in a record's text holds a lone surrogate escape (`"\\ud800"`).

    Valid JSON, but no Unicode text: Spark's strings are UTF-8, and its reader silently turns such a character
    into "?", so the value would load altered. Only text holding a `\\u` escape is searched (by a pattern, on
    the field's first string literal, as `json_token_kind` reads its first token); with `candidate`
    (`may_hold_lone_surrogate` of the same text, computed once for all the fields), only text where it is true.
    """
    _check_field(field)
    literal = F.regexp_extract(raw, '(?s)"' + field + r'"\s*:\s*"(' + _STRING_BODY + ')"', 1)
    searched = raw.contains("\\u") if candidate is None else candidate
    return F.coalesce(searched & literal.rlike(LONE_SURROGATE_PATTERN), F.lit(False))


def is_compact_record(raw: Column, fields: Sequence[tuple[str, str, Column]]) -> Column:
    """True when a record's text is exactly `{"id":7,"name":"Ada",…}`: the fields `(name, json_type, value)` in that
    order, compact, each value as `from_json` read it (a "string" field's quoted, an "integer" field's bare), none
    holding a quote or a backslash, each integer field's starting with `-` or a digit. Null when a value is null.

    Such text settles every field's JSON type without searching it (`json_token_kind`): its only quotes are those of
    its keys and string values, so each key is there once, every string field is a string and every integer field a
    number; with no backslash it holds no escape, so no lone surrogate either. What the API sends is nearly always
    this; anything else (escapes, spaces, another order, a missing, null or extra field) is left to the searches.
    A length comparison first: the text is rebuilt and compared only when its length is that of the rebuilt text.
    """
    pieces: list[Column] = []
    checks: list[Column] = []
    lengths: list[Column] = []
    literal = 0
    for index, (name, json_type, value) in enumerate(fields):
        _check_field(name)
        opening = ("{" if index == 0 else ",") + f'"{name}":' + ('"' if json_type == "string" else "")
        closing = '"' if json_type == "string" else ""
        pieces += [F.lit(opening), value] + ([F.lit(closing)] if closing else [])
        literal += len(opening.encode()) + len(closing.encode())
        lengths.append(F.octet_length(value))
        checks.append(~value.contains('"') & ~value.contains("\\"))
        if json_type != "string":
            first = F.ascii(value)  # the first character's code point (0 for empty text)
            checks.append((first == F.lit(ord("-"))) | first.between(ord("0"), ord("9")))
    pieces.append(F.lit("}"))
    literal += 1
    same_length = F.octet_length(raw) == functools.reduce(lambda a, b: a + b, lengths, F.lit(literal))
    return functools.reduce(lambda a, b: a & b, [same_length, *checks, raw == F.concat(*pieces)])


def is_json_object(raw: Column) -> Column:
    return F.coalesce(raw.startswith("{") | raw.rlike(r"^\s*\{"), F.lit(False))


# ---------------------------------------------------------------- Unicode NFC

# Spark has no NFC function and a Python UDF over every row would cost more than all the rest of the
# cleaning, so text is only sent to Python when it holds a character outside these ranges. They hold
# no character that NFC can change, compose or reorder (tests/test_clean.py proves it against
# `unicodedata`): Latin, Greek, Cyrillic, Vietnamese, punctuation, symbols, CJK, kana, Hangul
# syllables, emoji and their variation selectors. Combining marks, Hangul jamo, CJK compatibility
# ideographs and the few characters NFC replaces are all outside: any text that could change goes
# through Python.
NFC_STABLE_RANGES = (
    (0x0000, 0x02FF),
    (0x0388, 0x0482),
    (0x0488, 0x0590),
    (0x1E00, 0x1F70),
    (0x2002, 0x20CF),
    (0x212C, 0x2328),
    (0x232B, 0x2ADB),
    (0x2ADD, 0x2CEE),
    (0x2E00, 0x3029),
    (0x3030, 0x3098),
    (0x309B, 0xA66E),
    (0xABEE, 0xD7FF),
    (0xE000, 0xF8FF),
    (0xFB4F, 0xFE1F),
    (0xFE30, 0x101FC),
    (0x1E94B, 0x2F7FF),
)
# Characters past the first range, and outside every range: an intersection, so that Java's regex engine checks
# the sixteen ranges only for a character past the first one (a plain `[^…]` walks all of them for every character).
NFC_SUSPECT_PATTERN = (
    f"[\\x{{{NFC_STABLE_RANGES[0][1] + 1:X}}}-\\x{{10FFFF}}&&[^"
    + "".join(f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in NFC_STABLE_RANGES)
    + "]]"
)


def may_change_under_nfc(col: Column) -> Column:
    """True when the text holds a character outside `NFC_STABLE_RANGES`.

    ASCII text (one byte per character) is settled without the regex.
    """
    return F.coalesce((F.length(col) != F.octet_length(col)) & col.rlike(NFC_SUSPECT_PATTERN), F.lit(False))


def _nfc_function() -> Callable[[Optional[str]], Optional[str]]:
    """The UDF body, made in a closure so that it is shipped to the Python workers by value:
    they need not be able to import this package (pytest, a notebook, a bare `pyspark`)."""
    import unicodedata as ucd

    def nfc(text: Optional[str]) -> Optional[str]:
        return None if text is None else ucd.normalize("NFC", text)

    return nfc


_nfc_udf = F.udf(_nfc_function(), T.StringType())


def normalize_unicode(spec: EntitySpec) -> Callable[[DataFrame], DataFrame]:
    """Validated rows → the same rows with their text NFC-normalised (only `needs_nfc` rows go through Python).

    Splitting on the stored `needs_nfc` flag keeps the UDF off the common path; run the step on
    persisted input (as the transform does) and the split costs two cheap scans of the cache.
    """
    names = set(spec.text_columns)
    checks = [c for c in spec.columns if c.kind == "email_check"]  # NFC can turn a character into ASCII

    def step(validated: DataFrame) -> DataFrame:
        columns = validated.columns
        stable = validated.filter(~F.col("needs_nfc"))
        normalised = validated.filter(F.col("needs_nfc")).select(
            *[_nfc_udf(F.col(c)).alias(c) if c in names else F.col(c) for c in columns]
        )
        for check in checks:  # check the address again
            normalised = normalised.withColumn(check.name, is_valid_email(F.col(str(check.source))))
        return stable.unionByName(normalised.select(*columns))

    return step


# ---------------------------------------------------------------- DataFrame steps


def _value(field: str) -> str:
    return f"_value_{field}"


def _kind(field: str) -> str:
    return f"_kind_{field}"


def _lone(field: str) -> str:
    return f"_lone_{field}"


# The record text the JSON reader refused (`from_json`'s corrupt-record column): null for every record it read.
_REFUSED = "_refused"
# A number token longer than the reader takes (`JSON_READ_LIMITS`' maxNumLen counts its digits): what makes it
# refuse a valid record. Only the start of a run can match (the look-behind), so the search is linear.
LONG_NUMBER_PATTERN = rf"(?<![-+.eE0-9])[-+.eE0-9]{{{int(JSON_READ_LIMITS['maxNumLen']) + 1}}}"
# A record's id as sent, read off its text when the reader refused the record (for quarantine and deletions).
_ID_IN_TEXT = r'"id"\s*:\s*(-?[0-9]{1,20})(?![-+.eE0-9])'


def is_unreadable(refused: Column, raw: Column) -> Column:
    """True when the JSON reader refused a record (valid JSON, the landing was read) for a number longer than its
    limit: no field of it can be read, so it is refused whole (`unreadable_record`). Searched in refused text only."""
    return F.coalesce(F.when(refused.isNotNull(), raw.rlike(LONG_NUMBER_PATTERN)), F.lit(False))


def parse_records(spec: EntitySpec) -> Callable[[DataFrame], DataFrame]:
    """Bronze rows → the same rows plus each contract field as text (`_value_<f>`) and its JSON type (`_kind_<f>`),
    and `_unreadable` (`is_unreadable`)."""

    def step(bronze: DataFrame) -> DataFrame:
        return bronze.select(*session_columns(("parse", spec), lambda: _parse_columns(spec)))

    return step


def _parse_columns(spec: EntitySpec) -> list[Column]:
    """`parse_records`' projection: the record read with `from_json`, its fields and their types, in one projection.

    `from_json` is used by many columns and computed once per row by subexpression elimination (it is always
    evaluated: the fields are columns of the output). Reading it in a projection of its own cost ~0.7 µs a record
    more (2026-12-07): that projection copied the raw text and the parsed struct into a row of its own.
    """
    fields = spec.contract
    schema = T.StructType([*record_string_schema(spec).fields, T.StructField(_REFUSED, T.StringType(), True)])
    options = {**JSON_READ_LIMITS, "columnNameOfCorruptRecord": _REFUSED}
    record = F.from_json("raw_record", schema, options)
    # One projection: an expression used by several columns (whether the record was refused, whether its text
    # may hold a lone surrogate) is computed once per row by subexpression elimination, not carried in a
    # projection of its own (each projection copies every column of the row, the raw text included).
    unreadable = is_unreadable(record[_REFUSED], F.col("raw_record"))
    # Compact text as the API sends it settles every type at once and holds no escape; other text is searched field
    # by field. Both are the first condition of the expressions using them: computed once per row.
    compact = F.coalesce(
        is_compact_record(F.col("raw_record"), [(f.name, f.json_type, record[f.name]) for f in fields]),
        F.lit(False),
    )
    surrogates = ~compact & may_hold_lone_surrogate(F.col("raw_record"))
    values = {f.name: record[f.name] for f in fields}
    if "id" in values:  # the id of a refused record, when it is a plain integer
        in_text = F.nullif(F.regexp_extract(F.col("raw_record"), _ID_IN_TEXT, 1), F.lit(""))
        values["id"] = F.when(unreadable, in_text).otherwise(values["id"])
    kinds = {
        f.name: F.when(compact, F.lit(KIND_STRING if f.json_type == "string" else KIND_NUMBER)).otherwise(
            json_token_kind(F.col("raw_record"), f.name, record[f.name])
        )
        for f in fields
    }
    return [
        *[F.col(name) for name, _, _ in LINEAGE_FIELDS],
        F.col("raw_record"),
        F.col("fingerprint"),
        is_json_object(F.col("raw_record")).alias("_is_object"),
        unreadable.alias("_unreadable"),
        *[values[f.name].alias(_value(f.name)) for f in fields],
        *[kinds[f.name].alias(_kind(f.name)) for f in fields],
        *[
            has_lone_surrogate(F.col("raw_record"), f.name, surrogates).alias(_lone(f.name))
            for f in fields
            if f.json_type == "string"
        ],
    ]


def _text(field: str) -> Column:
    """The field's text when it is a JSON string (anything else is a contract break, handled in quarantine)."""
    return F.when(F.col(_kind(field)) == KIND_STRING, F.col(_value(field)))


def _integer(field: str, type_name: str = "bigint") -> Column:
    return F.when(F.col(_kind(field)) == KIND_NUMBER, to_integer(F.col(_value(field)), type_name))


def typed_column(column: TypedColumn) -> Column:
    """The cleaned value of one business column, by its kind (see `entities.TypedColumn`)."""
    source = str(column.source)
    if column.kind == "bigint":
        return _integer(source)
    if column.kind == "int":
        return _integer(source, "int")
    if column.kind == "text":
        return trim_text(_text(source))
    if column.kind == "lowercase":
        return F.lower(trim_text(_text(source)))
    if column.kind == "timestamp":
        return parse_source_timestamp(trim_text(_text(source)))
    if column.kind == "email":
        return clean_email(_text(source))
    if column.kind == "email_check":
        return is_valid_email(clean_email(_text(source)))
    if column.kind == "parent":
        return F.col(PARENT_COLUMN)
    raise ValueError(f"column {column.name!r}: unknown kind {column.kind!r}")


def _typed(spec: EntitySpec) -> Callable[[DataFrame], DataFrame]:
    """Parsed rows → typed, cleaned business columns (before the contract verdict)."""

    def step(parsed: DataFrame) -> DataFrame:
        business, needs_nfc = session_columns(("typed", spec), lambda: _typed_columns(spec))
        helpers = [
            F.col(c)
            for c in parsed.columns
            if c.startswith(("_kind_", "_value_", "_lone_")) or c in ("_is_object", "_unreadable")
        ]
        lineage = [F.col(name) for name, _, _ in LINEAGE_FIELDS]
        typed = parsed.select(*lineage, *business, F.col("raw_record"), F.col("fingerprint"), *helpers)
        return typed.withColumn("needs_nfc", needs_nfc)

    return step


def _typed_columns(spec: EntitySpec) -> tuple[list[Column], Column]:
    """The typed business columns, and whether any text column may change under NFC."""
    business = [typed_column(column).alias(column.name) for column in spec.columns]
    needs_nfc = [may_change_under_nfc(F.col(c)) for c in spec.text_columns]
    return business, functools.reduce(lambda a, b: a | b, needs_nfc)


def _with_verdict(spec: EntitySpec) -> Callable[[DataFrame], DataFrame]:
    """Typed rows → the entity's cleaned shape, with the id as sent and every contract reason."""

    def step(typed: DataFrame) -> DataFrame:
        return typed.select(*session_columns(("verdict", spec), lambda: _verdict_columns(spec)))

    return step


def _verdict_columns(spec: EntitySpec) -> list[Column]:
    reasons = contract_reasons(spec)
    values = {
        "reasons": reasons,
        "record_id": F.when(F.col("_kind_id").isin(KIND_NUMBER, KIND_STRING), F.col(_value("id"))),
        # The raw text is what quarantine needs; valid rows leave it in bronze (it would double every later shuffle).
        # `reasons` is computed once for both columns (subexpression elimination), in the same projection.
        "raw_record": F.when(F.size(reasons) > 0, F.col("raw_record")),
    }
    return [values.get(field.name, F.col(field.name)).alias(field.name) for field in clean_schema(spec).fields]


_SESSION_COLUMNS: dict[Hashable, Any] = {}
_SESSION_OWNER: list[Any] = [None]


def session_columns(key: Hashable, build: Callable[[], _T]) -> _T:
    """Column expressions built once per Spark session, then reused by every run: building the validation's
    expressions took ~2,500 Py4J calls (0.2–0.5 s a run, 2026-12-06). They are JVM objects of the running
    SparkContext, so a new context builds them again."""
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if _SESSION_OWNER[0] is not context:
        _SESSION_COLUMNS.clear()
        _SESSION_OWNER[0] = context
    value = _SESSION_COLUMNS.get(key)
    if value is None:
        value = _SESSION_COLUMNS[key] = build()
    return value


def validate_records(spec: EntitySpec) -> Callable[[DataFrame], DataFrame]:
    """Bronze rows of an entity → typed, trimmed rows with every contract reason (`schemas.clean_schema`).

    Text is not NFC yet: `needs_nfc` marks the rows `normalize_unicode` must send through Python.
    """

    def step(bronze: DataFrame) -> DataFrame:
        return bronze.transform(parse_records(spec)).transform(_typed(spec)).transform(_with_verdict(spec))

    return step
