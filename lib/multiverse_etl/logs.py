"""Logging set-up: one line per event, UTC timestamps, the same format for every job."""

from __future__ import annotations

import logging
import sys
import time

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once (idempotent), on stderr."""
    root = logging.getLogger()
    if getattr(root, "_multiverse_configured", False):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(FORMAT, "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("py4j", "botocore", "boto3", "urllib3", "s3transfer", "werkzeug", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    root._multiverse_configured = True  # type: ignore[attr-defined]
