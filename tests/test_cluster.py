"""A real Spark standalone cluster on 127.0.0.1 (one master, one worker, from the installed pyspark): `pipeline`
and then `maintain` through spark-submit.sh, the lake on the local S3 endpoint. The closest thing to an EMR step
this machine runs: the executor is a separate JVM that gets the code as the `--py-files` zip and the config as
`--files`, so anything that only works inside the driver's process fails here."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyspark
import pytest

from conftest import SHORT_LIVED_JVM
from sample_api.server import serve_in_background
from support.processes import job_env

ROOT = Path(__file__).resolve().parents[1]
SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"
SCALE, SEED = 40, 17


def _daemon(log: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    env["SPARK_DAEMON_JAVA_OPTS"] = SHORT_LIVED_JVM[1]  # the master and the worker live for one test
    with log.open("w") as out:
        return subprocess.Popen(
            [str(SPARK_CLASS), *args], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def _wait_for(log: Path, pattern: str, proc: subprocess.Popen, timeout_s: float = 90) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text())
        if match:
            return match
        assert proc.poll() is None, f"{log.name} ended with {proc.returncode}:\n{log.read_text()[-3000:]}"
        time.sleep(0.3)
    raise AssertionError(f"no '{pattern}' in {log.name} after {timeout_s}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the daemon's process group (the worker's executors with it), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture
def standalone_cluster(tmp_path):
    """spark://127.0.0.1:PORT with one worker (2 cores, 2 GiB); stopped by pid afterwards."""
    master_log, worker_log = tmp_path / "master.log", tmp_path / "worker.log"
    master = _daemon(
        master_log, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0"
    )
    worker = None
    try:
        url = _wait_for(master_log, r"Starting Spark master at (spark://127\.0\.0\.1:\d+)", master).group(1)
        worker = _daemon(
            worker_log,
            "org.apache.spark.deploy.worker.Worker",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--webui-port",
            "0",
            "--cores",
            "2",
            "--memory",
            "2g",
            "--work-dir",
            str(tmp_path / "work"),
            url,
        )
        _wait_for(worker_log, r"Successfully registered with master", worker)
        yield url, worker_log
    finally:
        for proc in (worker, master):
            if proc is not None:
                _stop(proc)
    assert master.returncode is not None and (worker is None or worker.returncode is not None)


def _submit(job: str, master: str, s3_endpoint: str, lake_root: str, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MV_")}
    # The interpreter (so the Spark) the cluster runs on: under `make test-spark4` that is not .venv's Spark 3.5,
    # and a driver of one Spark line cannot talk to a master of the other.
    env["MV_PYTHON"] = sys.executable
    command = [
        str(ROOT / "spark-submit.sh"),
        job,
        "--env",
        "local-s3",
        "--lake-root",
        lake_root,
        "--set",
        f"s3.endpoint_url={s3_endpoint}",
        "--set",
        f"spark.master={master}",
        "--set",
        "spark.conf.spark.driver.memory=1g",
        "--set",
        "spark.conf.spark.executor.memory=1g",
        "--set",
        "spark.conf.spark.ui.enabled=false",
        # The executor lives for one job, like the driver (conftest.SHORT_LIVED_JVM): C1 only. The library's own
        # executor option (UTC, spark.py) is repeated, as this setting replaces it.
        "--set",
        f"spark.conf.spark.executor.extraJavaOptions=-Duser.timezone=UTC {SHORT_LIVED_JVM[1]}",
        "--set",
        "transform.shuffle_partitions=2",
        "--set",
        "spark.conf.spark.databricks.delta.snapshotPartitions=1",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=540, env=env, cwd=ROOT)


def _check_lake(lake_root: str, s3_endpoint: str, run_id: str) -> subprocess.CompletedProcess:
    """The lake against the ground truth in a process of its own (support/check_lake.py): this test needs no shared
    session, so under `make test`'s two workers it runs beside the Spark tests."""
    tests = str(Path(__file__).resolve().parent)
    env = job_env(PYTHONPATH=os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH", "")) if p))
    command = [sys.executable, "-m", "support.check_lake", "--lake-root", lake_root, "--env", "local-s3"]
    command += ["--s3-endpoint", s3_endpoint, "--scale", str(SCALE), "--seed", str(SEED), "--run-id", run_id]
    return subprocess.run(command, capture_output=True, text=True, timeout=540, env=env, cwd=ROOT)


@pytest.mark.slow
def test_pipeline_and_maintain_on_a_standalone_cluster(standalone_cluster, local_s3, tmp_path):
    master, worker_log = standalone_cluster
    lake_root = f"s3://{local_s3.bucket}/cluster-{tmp_path.name}"
    with serve_in_background(scale=SCALE, seed=SEED) as api:
        pipeline = _submit("pipeline", master, local_s3.endpoint_url, lake_root, "--api-url", api.url)
    output = pipeline.stdout + pipeline.stderr
    assert pipeline.returncode == 0, output[-4000:]
    assert f"master={master}" in output  # the driver ran against the cluster, not local[*]
    run_id = re.search(r"extract committed run (\S+): ", output).group(1)
    # The work ran in an executor JVM the worker started for this application.
    assert re.search(r"Asked to launch executor app-\d+-\d+/\d+ for multiverse-etl-pipeline", worker_log.read_text()), (
        worker_log.read_text()[-3000:]
    )

    maintain = _submit("maintain", master, local_s3.endpoint_url, lake_root)
    assert maintain.returncode == 0, (maintain.stdout + maintain.stderr)[-4000:]
    report = maintain.stdout
    for table in ("silver/apprenticeships", "silver/projects", "gold/apprenticeships"):
        assert re.search(rf"^{re.escape(table)}\s", report, re.M), report[-3000:]
    # The pipeline's lake, after OPTIMIZE and VACUUM: every row of the ground truth, nothing else.
    check = _check_lake(lake_root, local_s3.endpoint_url, run_id)
    assert check.returncode == 0, "the lake is not the ground truth:\n" + (check.stdout + check.stderr)[-4000:]
