"""Fencing and two writers: a holder that lost the lake's lock commits nothing; a second pipeline on a locked
lake fails in one line and writes nothing, however long the first one has been running."""

import datetime as dt
import subprocess

import pytest

from multiverse_etl.extract import run_extract
from multiverse_etl.lock import LockLostError, acquire, break_lock, lake_lock, read_lock
from multiverse_etl.pipeline import run_pipeline
from multiverse_etl.storage import LocalStorage
from support.extract import extract_config, start_api, storage_for
from support.processes import job_command, job_env


class StealAfter:
    """A storage on which another writer takes the lake's lock right after the first write of a `key_part` key."""

    def __init__(self, inner, key_part: str) -> None:
        self.inner, self.key_part, self.stolen = inner, key_part, False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, data):
        self.inner.put(key, data)
        if self.key_part in key and not self.stolen:
            self.stolen = True
            break_lock(self.inner)  # an operator's --break-lock, then another run starts
            acquire(self.inner, "other-writer")


@pytest.fixture
def api():
    server = start_api(scale=20, seed=1)
    yield server
    server.stop()


def test_an_extraction_whose_lock_was_taken_over_writes_no_manifest(tmp_path, api):
    config = extract_config(str(tmp_path / "lake"), api.url)
    storage = StealAfter(storage_for(config), "_state/extract_runs/")  # stolen once the run has started
    with pytest.raises(LockLostError, match="taken over by other-writer"):
        with lake_lock(storage, "pipeline-A"):
            run_extract(config, storage=storage)
    assert not list(storage.inner.list("raw/_manifests/"))  # not committed: the run is left for --resume
    assert read_lock(storage.inner)["owner"] == "other-writer"  # and the new holder's lock is left alone


def test_the_pipeline_checks_it_still_holds_the_lake_before_transforming(tmp_path, api):
    config = extract_config(str(tmp_path / "lake"), api.url)
    storage = StealAfter(storage_for(config), "_state/watermark.json")  # stolen after the extract's commit
    sessions = []
    with pytest.raises(LockLostError, match="taken over by other-writer"):
        run_pipeline(config, lambda: sessions.append("spark"), storage=storage)  # type: ignore[arg-type,return-value]
    assert sessions == []  # no Spark session, no Delta commit


def test_a_second_pipeline_on_a_lake_locked_by_a_long_run_fails_in_one_line_and_writes_nothing(tmp_path):
    """The first run started 7 hours ago (more than the old 6-hour lock) and renews its lease: it still holds the lake."""
    lake = tmp_path / "lake"
    storage = LocalStorage(str(lake))
    now = dt.datetime.now(dt.timezone.utc)
    first = acquire(storage, "long-pipeline", clock=lambda: now - dt.timedelta(hours=7))
    first.clock = lambda: now
    assert first.renew()
    before = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file())
    second = subprocess.run(
        job_command("pipeline", str(lake), "--api-url", "http://127.0.0.1:9"),
        capture_output=True,
        text=True,
        env=job_env(),
        timeout=300,
    )
    assert second.returncode == 1, second.stderr[-3000:]
    errors = [line for line in second.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "pipeline failed: the lake" in errors[0] and "locked by long-pipeline" in errors[0]
    assert "Traceback" not in second.stderr
    after = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file())
    assert after == before and all(key.startswith("_locks/") for key in after)  # nothing written
    first.check_still_held()
    first.release()
