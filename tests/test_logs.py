"""Structured logs (JSON events with the job's context), redaction in both formats, and the console filter."""

from __future__ import annotations

import io
import json
import logging

import pytest

from multiverse_etl.config import load_config
from multiverse_etl.console import ConsoleFilter
from multiverse_etl.extract.redaction import RedactingFilter
from multiverse_etl.logs import ContextFilter, JsonFormatter, set_context, text_formatter
from multiverse_etl.submit import spark_log_file

SECRET = "s3cr3t-value-42"


def capture(fmt_factory):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(fmt_factory())
    handler.addFilter(ContextFilter())
    return stream, handler


@pytest.fixture
def logger():
    log = logging.getLogger("multiverse_etl.test_logs")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    log.handlers.clear()
    set_context(job=None, run_id=None)


def test_a_json_event_carries_the_message_every_extra_field_and_the_job_context(logger):
    stream, handler = capture(JsonFormatter)
    logger.addHandler(handler)
    set_context(job="extract", run_id="20261201T000000Z-abcdef")
    logger.info(
        "extract progress: %d pages",
        12,
        extra={"entity": "projects", "pages": 12, "records": 340, "requests_per_s": 55.5, "retries": 2, "limit": None},
    )
    event = json.loads(stream.getvalue())
    assert event["message"] == "extract progress: 12 pages" and event["level"] == "INFO"
    assert event["job"] == "extract" and event["run_id"] == "20261201T000000Z-abcdef"
    assert {k: event[k] for k in ("entity", "pages", "records", "requests_per_s", "retries", "limit")} == {
        "entity": "projects",
        "pages": 12,
        "records": 340,
        "requests_per_s": 55.5,
        "retries": 2,
        "limit": None,
    }
    assert event["ts"].endswith("Z") and event["logger"] == "multiverse_etl.test_logs"
    assert not {"args", "msg", "levelno", "pathname", "exc_info"} & set(event)  # no LogRecord internals


def test_one_json_object_per_event_even_with_a_multi_line_message_and_a_traceback(logger):
    stream, handler = capture(JsonFormatter)
    logger.addHandler(handler)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("summary\nsecond line")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["message"] == "summary\nsecond line" and "RuntimeError: boom" in event["exception"]


def test_secrets_are_redacted_the_same_in_text_and_json_messages_extras_and_tracebacks(logger):
    text_stream, text_handler = capture(text_formatter)
    json_stream, json_handler = capture(JsonFormatter)
    redactor = RedactingFilter()
    redactor.add(SECRET)
    for handler in (text_handler, json_handler):
        handler.addFilter(redactor)
        logger.addHandler(handler)
    logger.warning("login as user:%s@host failed", SECRET, extra={"url": f"http://user:{SECRET}@127.0.0.1/"})
    try:
        raise ValueError(f"token {SECRET} refused")
    except ValueError:
        logger.exception("request failed")
    text, events = text_stream.getvalue(), [json.loads(line) for line in json_stream.getvalue().splitlines()]
    assert SECRET not in text and SECRET not in json_stream.getvalue()
    assert "login as user:***@host failed" in text and events[0]["message"] == "login as user:***@host failed"
    assert events[0]["url"] == "http://user:***@127.0.0.1/"
    assert "token *** refused" in text and "token *** refused" in events[1]["exception"]


def test_json_is_the_default_on_emr_and_glue_and_text_locally():
    assert {env: load_config(env, environ={}).logging.format for env in ("local", "local-s3", "emr", "glue")} == {
        "local": "text",
        "local-s3": "text",
        "emr": "json",
        "glue": "json",
    }
    with pytest.raises(Exception, match="logging.format"):
        load_config("local", {"logging.format": "xml"}, environ={})


def test_spark_output_goes_to_a_log_file_locally_and_nowhere_hidden_on_emr_or_with_debug(tmp_path):
    local = load_config("local", environ={})
    path = spark_log_file("transform", local, "RUN", "INFO", project_root=tmp_path)
    assert path == tmp_path / "logs" / "transform-RUN.log"
    assert spark_log_file("transform", local, "RUN", "DEBUG") is None
    assert spark_log_file("transform", load_config("emr", environ={}), "RUN", "INFO") is None
    assert spark_log_file("extract", local, "RUN", "INFO") is None  # no Spark in a local extract


SPARK_STDERR = """\
:: loading settings :: url = jar:file:/x/ivy-2.5.1.jar!/org/apache/ivy/core/settings/ivysettings.xml
Ivy Default Cache set to: /p/.cache/ivy/cache
The jars for the packages stored in: /p/.cache/ivy/jars
io.delta#delta-spark_2.12 added as a dependency
:: resolving dependencies :: org.apache.spark#spark-submit-parent-3b;1.0
\tconfs: [default]
\tfound io.delta#delta-spark_2.12;3.3.2 in central
:: resolution report :: resolve 552ms :: artifacts dl 46ms
\t---------------------------------------------------------------------
\t|      default     |   6   |   0   |   0   |   0   ||   6   |   0   |
\t0 artifacts copied, 6 already retrieved (0kB/20ms)
26/12/01 23:01:11 WARN NativeCodeLoader: Unable to load native-hadoop library for your platform
2026-12-01T23:01:14Z INFO multiverse_etl.lock: lake lock taken by pipeline-1
{"ts": "2026-12-01T23:01:14.000Z", "level": "INFO", "logger": "multiverse_etl.extract", "message": "m"}
26/12/01 23:01:15 INFO SparkContext: Running Spark version 3.5.6
26/12/01 23:01:18 INFO Executor: Fetching spark://127.0.0.1:39847/jars/io.delta_delta-spark_2.12-3.3.2.jar
26/12/01 23:01:20 ERROR Executor: Exception in task 0.0
java.lang.IllegalStateException: bad
\tat org.apache.spark.Foo.bar(Foo.scala:1)
26/12/01 23:01:21 INFO BlockManager: Initialized BlockManager
\tcontinuation of an INFO record
2026-12-01T23:01:22Z ERROR multiverse_etl: transform failed: x
Traceback (most recent call last):
  File "x.py", line 1, in <module>
"""


def test_the_console_keeps_our_lines_and_spark_warnings_and_errors_and_hides_info_and_ivy():
    console = ConsoleFilter()
    shown = [line for line in SPARK_STDERR.splitlines() if console.show(line)]
    assert shown == [
        "26/12/01 23:01:11 WARN NativeCodeLoader: Unable to load native-hadoop library for your platform",
        "2026-12-01T23:01:14Z INFO multiverse_etl.lock: lake lock taken by pipeline-1",
        '{"ts": "2026-12-01T23:01:14.000Z", "level": "INFO", "logger": "multiverse_etl.extract", "message": "m"}',
        "26/12/01 23:01:20 ERROR Executor: Exception in task 0.0",
        "java.lang.IllegalStateException: bad",
        "\tat org.apache.spark.Foo.bar(Foo.scala:1)",
        "2026-12-01T23:01:22Z ERROR multiverse_etl: transform failed: x",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
    ]
    assert console.hidden == len(SPARK_STDERR.splitlines()) - len(shown)
