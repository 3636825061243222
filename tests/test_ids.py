"""One run-id function: landing runs, job log files and events, and lock owners share its shape."""

from __future__ import annotations

import datetime as dt

from multiverse_etl import landing, logs
from multiverse_etl.ids import RUN_ID_PATTERN, job_run_id, new_run_id


def test_a_run_id_is_the_landing_contracts_sortable_utc_second_and_six_hex_digits():
    run_id = new_run_id(dt.datetime(2026, 11, 27, 3, 34, 0, tzinfo=dt.timezone.utc))
    assert RUN_ID_PATTERN.match(run_id) and run_id.startswith("20261127T033400Z-")
    assert landing.check_run_id(run_id) == run_id and landing.run_ingest_date(run_id) == "2026-11-27"
    assert len({new_run_id() for _ in range(50)}) == 50  # unique within one second


def test_landing_logs_and_lock_owners_use_the_same_ids(monkeypatch):
    assert landing.new_run_id is new_run_id
    monkeypatch.delenv(logs.RUN_ID_ENV, raising=False)
    try:
        assert RUN_ID_PATTERN.match(logs.start_job_context("smoke")["run_id"])
    finally:
        logs.set_context(job=None, run_id=None)
    owner = job_run_id("pipeline")
    assert owner.startswith("pipeline-") and RUN_ID_PATTERN.match(owner.removeprefix("pipeline-"))
