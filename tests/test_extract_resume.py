"""A real crash: jobs/extract.py is SIGKILLed mid fan-out, then `--resume RUN_ID` finishes the run exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from multiverse_etl.landing import committed_runs
from multiverse_etl.storage import LocalStorage
from support.extract import assert_matches_ground_truth, start_api

ROOT = Path(__file__).resolve().parents[1]
SCALE, SEED = 400, 31


def job(lake: Path, url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "jobs" / "extract.py"),
        "--env",
        "local",
        "--lake-root",
        str(lake),
        "--api-url",
        url,
        "--set",
        "api.concurrency=4",
        "--set",
        "api.page_size=40",
        "--set",
        "extract.part_max_bytes=2048",
        "--set",
        "extract.progress_interval_s=0.5",
        *extra,
    ]


def project_parts(lake: Path) -> list[Path]:
    return sorted((lake / "raw" / "projects").rglob("part-*.jsonl.gz"))


def test_sigkill_mid_fan_out_then_resume_gives_exactly_the_ground_truth(tmp_path):
    lake = tmp_path / "lake"
    server = start_api(scale=SCALE, seed=SEED, latency_ms=25)  # ~3 s of fan-out at 4 connections
    try:
        log_path = tmp_path / "first.log"
        with open(log_path, "w") as log:
            first = subprocess.Popen(job(lake, server.url), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while len(project_parts(lake)) < 3:
            assert first.poll() is None, f"the extractor ended before it could be killed:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, "no project parts appeared"
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
        storage = LocalStorage(str(lake))
        assert list(committed_runs(storage)) == []  # no manifest: readers see nothing of it
        survivors = [p.relative_to(lake).as_posix() for p in project_parts(lake)]
        plans = list((lake / "_state" / "extract_runs").glob("*.json"))
        assert len(plans) == 1
        run_id = plans[0].stem

        resumed = subprocess.run(
            job(lake, server.url, "--resume", run_id), cwd=ROOT, capture_output=True, text=True, timeout=120
        )
    finally:
        server.stop()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"extract committed run {run_id}" in resumed.stdout
    runs = [m.to_json() for m in committed_runs(storage)]
    assert [r["run_id"] for r in runs] == [run_id]
    manifest = runs[0]
    assert manifest["attempt"] == 2
    kept = {p["key"] for p in manifest["entities"]["projects"]["parts"]}
    assert set(survivors) <= kept  # the first attempt's committed parts were trusted, not redone
    assert manifest["entities"]["projects"]["parents"] == SCALE
    # parents already landed were skipped: the resume asked for fewer project lists than there are parents
    assert manifest["entities"]["projects"]["requests"] < SCALE
    assert_matches_ground_truth(storage, run_id, SCALE, SEED)
