"""Crash points: the jobs are SIGKILLed at precise points, then recovered as docs/reliability.md says.

* extractor, during a part upload to S3 (parts sent, CompleteMultipartUpload not yet): `--resume`
  gives exactly the ground truth. (SIGKILL during the fan-out: tests/test_extract_resume.py.)
* transform, between bronze and silver (right after the run's last bronze commit), then again,
  re-run, during the silver MERGE of projects (its data files written, its commit not): the next
  re-run repairs everything and silver and gold equal the ground truth, with one copy of the run in
  bronze and one audit row.

The pause before the upload is injected from test code (support.processes.PAUSE_BOOTSTRAP); the
transform kills are timed by watching the lake's Delta logs and data files.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from conftest import make_config
from multiverse_etl.landing import committed_runs
from multiverse_etl.lock import LOCK_KEY
from support.extract import assert_matches_ground_truth, start_api, storage_for
from support.processes import job_command, job_env, kill_when, paused


def run_job(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=job_env())


def test_extractor_killed_during_a_part_upload_is_resumed_to_exactly_the_ground_truth(s3_config, tmp_path):
    scale, seed = 150, 61
    root = f"{s3_config.lake.root}/crash-upload-{uuid.uuid4().hex[:8]}"
    config = make_config(root, env="local-s3", s3={"endpoint_url": s3_config.s3.endpoint_url})
    storage = storage_for(config)
    server = start_api(scale=scale, seed=seed)
    try:
        command = job_command(
            "extract",
            root,
            "--env",
            "local-s3",
            "--api-url",
            server.url,
            "--set",
            f"s3.endpoint_url={s3_config.s3.endpoint_url}",
            "--set",
            "api.page_size=40",
            "--set",
            "api.concurrency=4",
            "--set",
            "extract.part_max_bytes=2048",
            env_name="local-s3",
        )
        marker = tmp_path / "paused"
        env = job_env(TEST_PAUSE_AT="s3-complete", TEST_PAUSE_NTH="3", TEST_PAUSE_MARKER=str(marker))
        log_path = tmp_path / "killed.log"
        with open(log_path, "w") as log:
            killed = subprocess.Popen(
                paused(command), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        kill_when(killed, marker.exists, timeout_s=90, what="during a part upload", log=log_path)
        in_flight = marker.read_text()

        # What the crash left: no manifest, two whole projects parts, the third one's upload never completed.
        assert list(committed_runs(storage)) == []
        assert not storage.exists(in_flight[len(storage.prefix) + 1 :])
        uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=in_flight).get("Uploads", [])
        assert [u["Key"] for u in uploads] == [in_flight]  # an incomplete upload: invisible, never read
        run_id = next(storage.list("_state/extract_runs/")).key.rsplit("/", 1)[1][: -len(".json")]
        before = sorted(o.key for o in storage.list("raw/projects/"))
        assert len(before) == 2
        locked = storage.exists(LOCK_KEY)  # if the job takes the lake lock, the dead holder's lock is left

        resumed = run_job(command + ["--resume", run_id])
    finally:
        server.stop()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    if locked:
        assert "left by a process of this host that is gone" in resumed.stderr  # taken over, with a warning
    (manifest,) = [m.to_json() for m in committed_runs(storage)]
    assert manifest["run_id"] == run_id and manifest["attempt"] == 2
    assert set(before) <= {p["key"] for p in manifest["entities"]["projects"]["parts"]}  # kept, not redone
    assert_matches_ground_truth(storage, run_id, scale, seed)
    head = storage.client.head_object(
        Bucket=storage.bucket, Key=storage._key(manifest["entities"]["projects"]["parts"][-1]["key"])
    )
    assert head["ServerSideEncryption"] == "AES256"
    assert not storage.exists(LOCK_KEY)


@pytest.fixture(scope="module")
def chain(crash_chain_run):
    return crash_chain_run


def test_transform_killed_between_bronze_and_silver(chain):
    step = chain.steps["pipeline killed between bronze and silver"]
    assert step.returncode == -9
    versions = step.lake["versions"]
    assert all(versions[f"bronze/{e}"] == [0, 1] for e in ("programmes", "apprenticeships", "projects")), versions
    assert all(
        versions[t] == [0]
        for t in (
            "silver/programmes",
            "silver/apprenticeships",
            "silver/projects",
            "silver/quarantine",
            "gold/apprenticeships",
            "_audit/runs",
        )
    ), versions
    assert step.lake["lock"] is not None and '"owner": "pipeline-' in step.lake["lock"]  # the dead holder's lock stays


def test_transform_killed_during_a_silver_merge(chain):
    step = chain.steps["re-run killed during the silver MERGE"]
    assert step.returncode == -9
    lake = step.lake
    assert lake["versions"]["silver/projects"] == [0], "the MERGE had committed before the kill"
    assert lake["uncommitted"]["silver/projects"], "no data file of the interrupted MERGE"
    # A first load appends the three silver tables side by side: the others may or may not have committed yet.
    assert lake["versions"]["silver/apprenticeships"] in ([0], [0, 1])
    assert lake["versions"]["silver/programmes"] in ([0], [0, 1])
    assert lake["versions"]["_audit/runs"] == [0]  # the run is not marked loaded: it stays pending


def test_a_re_run_after_a_crash_takes_over_the_dead_holders_lock_and_says_so(chain):
    """On the host of the killed job, its lock is recognised as a dead process's and replaced, with a warning."""
    refused = chain.steps.get("re-run refused by the dead holder's lock")
    if refused is not None:  # another host: refused at once, naming the holder and the way out
        assert refused.returncode != 0 and "locked by" in refused.output and "--break-lock" in refused.output
        assert refused.lake["versions"] == chain.steps["pipeline killed between bronze and silver"].lake["versions"]
    else:
        output = chain.steps["re-run killed during the silver MERGE"].output
        assert "left by a process of this host that is gone" in output, output[-3000:]
    assert "left by a process of this host that is gone" in chain.steps["final re-run"].output


def test_after_the_crashes_a_re_run_repairs_the_lake_to_exactly_the_ground_truth(chain):
    assert chain.comparison.ok, chain.comparison.describe()
    (run_id,) = chain.run_ids
    assert chain.audit == [(run_id, "loaded")]  # one loaded marker: not a doubled load
    assert chain.bronze_rows == {e: chain.reference.expected_records(e) for e in chain.bronze_rows}
    final = chain.steps["final re-run"].lake
    assert final["lock"] is None
    # The interrupted MERGE's files are not part of the table (Delta ignores them; VACUUM deletes them).
    orphans = chain.steps["re-run killed during the silver MERGE"].lake["uncommitted"]["silver/projects"]
    assert set(orphans) <= set(final["uncommitted"]["silver/projects"])
