"""SIGTERM and SIGINT stop a job cleanly: the lock released, in-flight landing left for --resume, exit 143/130,
one line on the lake's state; through spark-submit.sh the signal reaches the Python driver itself."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from multiverse_etl.lock import LOCK_KEY
from sample_api.server import serve_in_background
from support.processes import PYTHON, ROOT, job_command, job_env

SLOW_API = dict(scale=300, seed=3, latency_ms=30)  # slow enough that the signal lands mid-extraction


def wait_for(condition, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    """Until `condition()` holds; fails (with the job's output) if the job ends first or it never does."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, f"the job ended (exit {proc.returncode}) too early:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting:\n{log.read_text()[-3000:]}"
        time.sleep(0.01)


def extracting(lake: Path):
    """The job holds the lake lock and has started its run (its plan is written): parts are in flight."""
    return lambda: (lake / LOCK_KEY).exists() and any((lake / "_state" / "extract_runs").glob("*.json"))


def run_plans(lake: Path) -> list[str]:
    return [p.stem for p in (lake / "_state" / "extract_runs").glob("*.json")]


def check_clean_stop(lake: Path, log: Path, code: int, name: str, api_url: str) -> None:
    out = log.read_text()
    assert code == 128 + getattr(signal, name), out[-3000:]
    last = [line for line in out.splitlines() if line.strip()][-1]
    assert f"pipeline: stopped by {name} (exit {code}); lake: nothing was committed" in last, out[-3000:]
    assert not (lake / LOCK_KEY).exists(), "the lock must be released"
    assert not list((lake / "raw" / "_manifests").glob("*.json")) if (lake / "raw" / "_manifests").exists() else True
    (run_id,) = run_plans(lake)
    resumed = subprocess.run(
        job_command("extract", str(lake), "--api-url", api_url, "--resume", run_id),
        capture_output=True,
        text=True,
        env=job_env(),
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]  # what the stop left is finished by --resume
    manifest = json.loads((lake / "raw" / "_manifests" / f"{run_id}.json").read_text())
    assert manifest["status"] == "committed" and manifest["entities"]["apprenticeships"]["records"] == 300


def test_sigterm_stops_a_pipeline_cleanly_releasing_the_lock_and_leaving_its_run_for_resume(tmp_path):
    lake, log = tmp_path / "lake", tmp_path / "job.log"
    with serve_in_background(**SLOW_API) as api:
        command = job_command("pipeline", str(lake), "--api-url", api.url, "--set", "api.concurrency=2")
        with open(log, "w") as out:
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=job_env(), start_new_session=True
            )
        wait_for(extracting(lake), proc, log)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        check_clean_stop(lake, log, code, "SIGTERM", api.url)


def test_sigint_stops_it_with_exit_code_130(tmp_path):
    lake, log = tmp_path / "lake", tmp_path / "job.log"
    with serve_in_background(**SLOW_API) as api:
        command = job_command("pipeline", str(lake), "--api-url", api.url, "--set", "api.concurrency=2")
        with open(log, "w") as out:
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=job_env(), start_new_session=True
            )
        wait_for(extracting(lake), proc, log)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
        check_clean_stop(lake, log, code, "SIGINT", api.url)


FAKE_SPARK_SUBMIT = """#!{python}
# Stands in for spark-submit's JVM: starts the Python driver as its child and dies at once on SIGTERM,
# without passing it on (as SparkSubmit does); the driver must still hear of it.
import os, signal, subprocess, sys
args = sys.argv[1:]
entry = next(i for i, a in enumerate(args) if a.endswith(".py") and args[i - 1] not in ("--py-files", "--files"))
driver = subprocess.Popen([sys.executable, *args[entry:]])
with open(os.environ["FAKE_JVM_PIDS"], "w") as out:
    out.write(f"{{os.getpid()}} {{driver.pid}}")
signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
sys.exit(driver.wait())
"""


def test_sigterm_to_spark_submit_sh_reaches_the_python_driver(tmp_path):
    """spark-submit.sh -> submit.py -> spark-submit (the JVM) -> the Python driver: SIGTERM to the first stops
    the driver cleanly (lock released, exit 143) instead of leaving it running on, orphaned."""
    bin_dir, lake, log, pids = tmp_path / "bin", tmp_path / "lake", tmp_path / "job.log", tmp_path / "pids"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)  # spark-submit is looked for beside the interpreter
    fake = bin_dir / "spark-submit"
    fake.write_text(FAKE_SPARK_SUBMIT.format(python=sys.executable))
    fake.chmod(0o755)
    site = next(p for p in sys.path if p.endswith("site-packages"))
    env = job_env(MV_PYTHON=str(bin_dir / "python"), FAKE_JVM_PIDS=str(pids), PYTHONPATH=site)
    with serve_in_background(**SLOW_API) as api:
        command = [
            str(ROOT / "spark-submit.sh"),
            "pipeline",
            "--env",
            "local",
            "--lake-root",
            str(lake),
            "--api-url",
            api.url,
            "--set",
            "api.concurrency=2",
            "--set",
            "logging.spark_output=console",
        ]
        with open(log, "w") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_for(lambda: extracting(lake)() and pids.exists() and pids.read_text(), proc, log)
        driver_pid = int(pids.read_text().split()[1])
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        assert _gone(driver_pid), "the Python driver runs on after spark-submit.sh ended"
        check_clean_stop(lake, log, code, "SIGTERM", api.url)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


assert PYTHON  # the jobs run with this interpreter
