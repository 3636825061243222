"""Logging set-up: one line per event, UTC timestamps, the same format for every job.

Two formats: `text` (people at a console) and `json` (one JSON object per event, for CloudWatch Logs
Insights or any log store). A JSON event carries the message plus every field the caller passed with
`extra={...}`, and the job's context (job name, run id) set once at job start with `set_context`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from typing import Any, Optional

from .ids import new_run_id

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
FORMATS = ("text", "json")
# spark-submit.sh names the job's log file after this run id and hands it to the job with this variable.
RUN_ID_ENV = "MV_LOG_RUN_ID"
NOISY = ("py4j", "botocore", "boto3", "urllib3", "s3transfer", "werkzeug", "asyncio")
# Attributes every LogRecord has: anything else on a record came from `extra=` (or the context filter).
STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

_context: dict[str, Any] = {}


def set_context(**fields: Any) -> dict[str, Any]:
    """Fields stamped on every event from now on (job, run_id); None removes one. The context, as a copy."""
    for key, value in fields.items():
        if value is None:
            _context.pop(key, None)
        else:
            _context[key] = value
    return dict(_context)


def context() -> dict[str, Any]:
    return dict(_context)


def start_job_context(job: str) -> dict[str, Any]:
    """At job start: the job's name and run id (spark-submit.sh's, so the log file and the events agree)."""
    return set_context(job=job, run_id=os.environ.get(RUN_ID_ENV) or new_run_id())


class ContextFilter(logging.Filter):
    """Adds the job context to every record that does not carry the same field already."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What callers attached to a record: every non-standard attribute (extra=... and the context)."""
    return {k: v for k, v in vars(record).items() if k not in STANDARD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per event: ts, level, logger, message, the context and every extra field."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in event_fields(record).items():
            event.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            event["exception"] = record.exc_text
        return json.dumps(event, default=str, ensure_ascii=False)


def text_formatter() -> logging.Formatter:
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime
    return formatter


def make_formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {list(FORMATS)}, got {fmt!r}")
    return JsonFormatter() if fmt == "json" else text_formatter()


class ConsoleHandler(logging.StreamHandler):
    """The project's own handler on the root logger (found again by its class, so set-up is idempotent)."""


def _our_handler() -> Optional[logging.Handler]:
    return next((h for h in logging.getLogger().handlers if isinstance(h, ConsoleHandler)), None)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once (idempotent), on stderr; a second call changes level and format."""
    root = logging.getLogger()
    handler = _our_handler()
    if handler is None:
        handler = ConsoleHandler(sys.stderr)
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
        for noisy in NOISY:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    handler.setFormatter(make_formatter(fmt))
    root.setLevel(level)


def set_format(fmt: str) -> None:
    """Switch the console's format (the config's `logging.format`, once the config is loaded)."""
    handler = _our_handler()
    if handler is not None:
        handler.setFormatter(make_formatter(fmt))
