"""Pseudonymisation: a real HMAC-SHA256 computed on the executors, the schema kept, the key checked and in no plan or log."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from contextlib import contextmanager
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from multiverse_etl.spark import spark_log_level
from multiverse_etl.transform.pseudonymise import (
    MIN_KEY_BYTES,
    PERSONAL_COLUMNS,
    PseudonymisationKeyError,
    key_fingerprint,
    pseudonymisation_key,
    pseudonymise,
    pseudonymise_personal_data,
)
from multiverse_etl.transform.schemas import GOLD_APPRENTICESHIP_PROJECTS_SCHEMA, GOLD_APPRENTICESHIPS_SCHEMA

KEY = "k" * 16 + "0123456789abcdef"  # 32 bytes
OTHER_KEY = "another-key-of-at-least-32-bytes!!"
LONG_KEY = "L" * 100  # longer than the SHA-256 block: RFC 2104 hashes it first
VALUES = [
    "ada@example.org",
    "Zoë",
    "Łukasz",
    "李小龍",
    "O'Brien",
    "de la Cruz",
    "",
    "a\x00b",
    "😀" * 40,
    "x" * 300,
    None,
]


def reference(key: str, value, context: str = "") -> str | None:
    """RFC 2104 HMAC-SHA256 from Python's standard library."""
    if value is None:
        return None
    return hmac.new(key.encode(), context.encode() + b"\x00" + value.encode(), hashlib.sha256).hexdigest()


def one_column(spark, values):
    return spark.createDataFrame([(v,) for v in values], T.StructType([T.StructField("v", T.StringType(), True)]))


@pytest.mark.parametrize("key", [KEY, LONG_KEY, "é" * 16])
def test_the_spark_expression_is_exactly_hmac_sha256(spark, key):
    df = one_column(spark, VALUES)
    got = [r.h for r in df.select(pseudonymise(F.col("v"), key).alias("h")).collect()]
    assert got == [reference(key, v) for v in VALUES]
    with_context = [r.h for r in df.select(pseudonymise(F.col("v"), key, "email_address").alias("h")).collect()]
    assert with_context == [reference(key, v, "email_address") for v in VALUES]


def test_pseudonyms_are_deterministic_keyed_and_separated_by_column(spark):
    df = one_column(spark, ["Smith", "Smith", "smith"])
    rows = df.select(
        pseudonymise(F.col("v"), KEY, "first_name").alias("a"),
        pseudonymise(F.col("v"), KEY, "last_name").alias("b"),
        pseudonymise(F.col("v"), OTHER_KEY, "first_name").alias("c"),
    ).collect()
    assert rows[0].a == rows[1].a != rows[2].a  # same value, same pseudonym: joins still work
    assert rows[0].a != rows[0].b  # an equal first and last name cannot be linked
    assert rows[0].a != rows[0].c  # another key, another pseudonym
    assert all(len(r.a) == 64 and int(r.a, 16) >= 0 for r in rows)
    unkeyed = hashlib.sha256(b"Smith").hexdigest()
    assert unkeyed not in {rows[0].a, rows[0].b}  # not a plain hash a dictionary attack would reverse


def gold_apprenticeship_row(aid: int, first, last, email):
    import datetime as dt

    return (
        aid,
        "Data Fellowship – Acme",
        7,
        dt.datetime(2024, 3, 5, 10, 21, 33),
        first,
        last,
        email,
        True,
        "Data Fellowship",
        12,
        True,
        2,
        1,
        1,
        0,
        True,
        dt.date(2024, 3, 1),
    )


def test_gold_keeps_its_schema_and_only_personal_columns_change(spark):
    rows = [
        gold_apprenticeship_row(1, "Ada", "Lovelace", "ada@example.org"),
        gold_apprenticeship_row(2, "Zoë", "", "zoe@example.org"),
        gold_apprenticeship_row(3, "李小龍", "O'Brien", "x" * 254),
    ]
    gold = spark.createDataFrame(rows, GOLD_APPRENTICESHIPS_SCHEMA)
    got = pseudonymise_personal_data(gold, KEY)

    expected_rows = [
        tuple(
            reference(KEY, v, GOLD_APPRENTICESHIPS_SCHEMA.names[i])
            if GOLD_APPRENTICESHIPS_SCHEMA.names[i] in PERSONAL_COLUMNS
            else v
            for i, v in enumerate(row)
        )
        for row in rows
    ]
    expected = spark.createDataFrame(expected_rows, GOLD_APPRENTICESHIPS_SCHEMA)
    assert_df_equality(got, expected, ignore_row_order=True)  # schema included: same names, types, nullability
    assert got.schema == GOLD_APPRENTICESHIPS_SCHEMA


def test_the_projects_gold_table_is_pseudonymised_with_the_same_pseudonyms(spark):
    import datetime as dt

    row = (
        10,
        1,
        "Title",
        "Text",
        "graded",
        True,
        "Data Fellowship – Acme",
        "Ada",
        "Lovelace",
        "ada@example.org",
        True,
        dt.datetime(2024, 3, 5, 10, 21, 33),
        7,
        True,
        "Data Fellowship",
        12,
        "Learn.",
        dt.date(2024, 3, 1),
    )
    orphan = (11, 9, "Orphan", "Text", "pending", False) + (None,) * 7 + (False, None, None, None, None)
    schema = GOLD_APPRENTICESHIP_PROJECTS_SCHEMA
    projects = pseudonymise_personal_data(spark.createDataFrame([row, orphan], schema), KEY)
    expected = spark.createDataFrame(
        [
            tuple(
                reference(KEY, v, schema.names[i]) if schema.names[i] in PERSONAL_COLUMNS else v
                for i, v in enumerate(r)
            )
            for r in (row, orphan)
        ],
        schema,
    )
    assert_df_equality(projects, expected, ignore_row_order=True)  # an orphan's personal columns stay null
    projects = projects.where(F.col("apprenticeship_known"))
    apprenticeships = pseudonymise_personal_data(
        spark.createDataFrame(
            [gold_apprenticeship_row(1, "Ada", "Lovelace", "ada@example.org")], GOLD_APPRENTICESHIPS_SCHEMA
        ),
        KEY,
    )
    assert projects.schema == GOLD_APPRENTICESHIP_PROJECTS_SCHEMA
    joined = projects.join(apprenticeships, on=["apprenticeship_id", "email_address", "first_name", "last_name"])
    assert joined.count() == 1  # one person, one pseudonym in both tables
    p = projects.first()
    assert (p.title, p.apprenticeship_name, p.email_is_valid) == ("Title", "Data Fellowship – Acme", True)
    assert "ada" not in "".join([p.first_name, p.last_name, p.email_address]).lower()


def test_a_frame_without_personal_columns_is_returned_as_is(spark):
    df = one_column(spark, ["a"])
    assert pseudonymise_personal_data(df, KEY) is df
    with pytest.raises(TypeError, match="'v' is int"):
        pseudonymise_personal_data(spark.createDataFrame([(1,)], "v int"), KEY, columns=("v",))


def test_the_key_comes_from_the_named_variable_and_must_be_256_bits(spark):  # F.col needs a session
    good = "0123456789abcdef" * 4
    assert pseudonymisation_key("MV_PSEUDONYMISE_KEY", {"MV_PSEUDONYMISE_KEY": good}) == good
    with pytest.raises(PseudonymisationKeyError, match="MV_PSEUDONYMISE_KEY .*is not set"):
        pseudonymisation_key("MV_PSEUDONYMISE_KEY", {})
    short = "s3cr3t-but-short"
    with pytest.raises(
        PseudonymisationKeyError, match=f"CUSTOM_KEY .*holds 16 bytes.*at least {MIN_KEY_BYTES}"
    ) as failure:
        pseudonymisation_key("CUSTOM_KEY", {"CUSTOM_KEY": short})
    assert short not in str(failure.value) + repr(failure.value)
    with pytest.raises(PseudonymisationKeyError):
        pseudonymise(F.col("x"), "too short")


def test_the_key_fingerprint_tells_keys_apart_without_revealing_them():
    assert key_fingerprint(KEY) == key_fingerprint(KEY) != key_fingerprint(OTHER_KEY)
    assert len(key_fingerprint(KEY)) == 16 and KEY[:8] not in key_fingerprint(KEY)


def secret_forms(key: str) -> dict[str, bytes]:
    """The key and the RFC 2104 padded keys K' xor ipad / K' xor opad (what the old literals held), raw and in hex."""
    raw = key.encode()
    padded = (hashlib.sha256(raw).digest() if len(raw) > 64 else raw).ljust(64, b"\0")
    forms = {}
    for name, value in (
        ("key", raw),
        ("inner", bytes(b ^ 0x36 for b in padded)),
        ("outer", bytes(b ^ 0x5C for b in padded)),
    ):
        forms[name] = value
        forms[f"{name} hex"] = value.hex().encode()
    return forms


@contextmanager
def jvm_log_file(spark, path: Path):
    """Spark's own log at INFO (what a production job logs) copied into `path` while the block runs."""
    level_after = spark_log_level()
    jvm = spark.sparkContext._jvm
    core = jvm.org.apache.logging.log4j.core
    context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
    layout = core.layout.PatternLayout.newBuilder().withPattern("%d %p %c: %m%n").build()
    appender = (
        core.appender.FileAppender.newBuilder()
        .withFileName(str(path))
        .setName("pseudonymise-test")
        .setLayout(layout)
        .build()
    )
    appender.start()
    root = context.getConfiguration().getRootLogger()
    root.addAppender(appender, None, None)
    context.updateLoggers()
    spark.sparkContext.setLogLevel("INFO")
    try:
        yield
    finally:
        spark.sparkContext.setLogLevel(level_after)
        root.removeAppender("pseudonymise-test")
        context.updateLoggers()
        appender.stop()


@contextmanager
def event_log(spark, directory: Path):
    """Spark's own event logger (what `spark.eventLog.enabled` starts, on by default on EMR), attached to the running
    context for the block only: the suite's session does not pay an event log for every other test."""
    sc = spark.sparkContext
    jvm = sc._jvm
    listener = jvm.org.apache.spark.scheduler.EventLoggingListener(
        f"pseudonymise-{secrets.token_hex(4)}",
        jvm.scala.Option.apply(None),
        jvm.java.net.URI(directory.as_uri()),
        # Plain text, one file, on both Spark lines (Spark 4 compresses and rolls event logs by default): the key is
        # searched for in what the events say.
        sc._jsc.sc()
        .conf()
        .clone()
        .set("spark.eventLog.compress", "false")
        .set("spark.eventLog.rolling.enabled", "false"),
        sc._jsc.hadoopConfiguration(),
    )
    listener.start()
    sc._jsc.sc().addSparkListener(listener)
    try:
        yield
    finally:
        sc._jsc.sc().listenerBus().waitUntilEmpty()  # every event of the block is in the event log
        sc._jsc.sc().removeSparkListener(listener)
        listener.stop()


def test_the_key_is_in_no_plan_event_log_or_log(spark, tmp_path, caplog):
    """The key is a secret: a pseudonymising job's plans, event log (on by default on EMR) and logs never hold it."""
    key = secrets.token_hex(32)  # fresh: found only if this test leaks it
    schema = T.StructType(
        [
            T.StructField("apprenticeship_id", T.LongType(), False),
            T.StructField("first_name", T.StringType(), False),
            T.StructField("email_address", T.StringType(), True),
        ]
    )
    df = spark.createDataFrame([(1, "Ada", "ada@example.org"), (2, "Zoë", None)], schema)
    event_dir = tmp_path / "events"
    event_dir.mkdir()
    with event_log(spark, event_dir), jvm_log_file(spark, tmp_path / "spark.log"), caplog.at_level(logging.DEBUG):
        got = pseudonymise_personal_data(df, key)
        plans = got._jdf.queryExecution().toString()  # parsed, analysed, optimised and physical plans
        rows = got.orderBy("apprenticeship_id").collect()
    assert [tuple(r) for r in rows] == [
        (1, reference(key, "Ada", "first_name"), reference(key, "ada@example.org", "email_address")),
        (2, reference(key, "Zoë", "first_name"), None),
    ]
    assert got.schema == schema  # NOT NULL stays NOT NULL
    events = b"".join(path.read_bytes() for path in sorted(event_dir.iterdir()))
    assert b"SparkListenerSQLExecutionStart" in events and b"first_name" in events  # the plan is there...
    places = {
        "plans": plans.encode(),
        "event log": events,
        "spark log": (tmp_path / "spark.log").read_bytes(),
        "python log": caplog.text.encode(),
    }
    assert b"INFO" in places["spark log"]
    leaks = [
        (form, place)
        for form, secret in secret_forms(key).items()
        for place, text in places.items()
        if secret in text or secret in text.lower()
    ]
    assert not leaks, f"secret forms found (form, place): {leaks}"  # ...but not the key, in no form
