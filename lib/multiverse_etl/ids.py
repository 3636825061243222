"""The one id generator for runs: a landing run, a job's log file and events, a lock holder (`job_run_id`).

Sortable by start time and unique across concurrent starts: 20261127T033400Z-1a2b3c (the landing contract's
run id, whose date is the run's ingest date).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Optional

RUN_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


def new_run_id(now: Optional[dt.datetime] = None) -> str:
    """A new run id, e.g. 20261127T033400Z-1a2b3c (UTC second, then 6 random hex digits)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def job_run_id(job: str) -> str:
    """One run of a job, e.g. pipeline-20261127T033400Z-1a2b3c: the lake lock's owner names it."""
    return f"{job}-{new_run_id()}"
