"""Jobs as subprocesses: their command line and environment, SIGKILL on a condition, a deliberate pause."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from support.config import TEST_SPARK_CONF

ROOT = Path(__file__).resolve().parents[2]  # the project
PYTHON = sys.executable

# ---------------------------------------------------------------- jobs as subprocesses


def scheduler_cwd(tmp_path: Path, lake: Path) -> tuple[Path, str]:
    """A working directory elsewhere (as cron or Airflow start a job), and the lake's path relative to the project
    root: it means `lake` only if resolved against the project root (the README's rule), not against that directory."""
    elsewhere = tmp_path / "scheduler" / "cwd"
    elsewhere.mkdir(parents=True)
    relative_to_root = os.path.relpath(lake, ROOT)
    assert not (elsewhere / relative_to_root).resolve() == lake
    return elsewhere, relative_to_root


def job_command(job: str, lake: str, *extra: str, env_name: str = "local") -> list[str]:
    """`jobs/<job>.py` with the test-sized Spark settings (2 shuffle partitions, small Delta snapshots)."""
    conf = {**TEST_SPARK_CONF, "spark.driver.memory": "1g"}
    spark_sets = ["--set", "transform.shuffle_partitions=2"]
    spark_sets += [arg for name, value in conf.items() for arg in ("--set", f"spark.conf.{name}={value}")]
    if job == "extract":
        spark_sets = []
    return [PYTHON, str(ROOT / "jobs" / f"{job}.py"), "--env", env_name, "--lake-root", lake, *spark_sets, *extra]


def job_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MV_")}
    env.update(extra)
    return env


def kill_when(
    proc: subprocess.Popen,
    condition: Callable[[], bool],
    timeout_s: float,
    poll_s: float = 0.002,
    what: str = "",
    log: Optional[Path] = None,
) -> float:
    """SIGKILL `proc`'s process group the moment `condition()` holds; the seconds it took. Fails if it ends first.

    Start `proc` with `start_new_session=True` (its own process group).

    `what` names the point in failure messages, followed by the end of `log` (the job's output).
    """

    def tail() -> str:
        return (":\n" + log.read_text()[-4000:]) if log is not None and log.exists() else ""

    def kill() -> None:
        # The whole process group: the Python driver and its Spark JVM die at the same instant, as in a
        # machine or container loss (killing Python alone lets the JVM run its shutdown hooks first).
        try:
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    started = time.monotonic()
    while True:
        if condition():
            kill()
            return time.monotonic() - started
        if proc.poll() is not None:
            raise AssertionError(f"the job ended (exit {proc.returncode}) before it could be killed {what}{tail()}")
        if time.monotonic() - started > timeout_s:
            kill()
            raise AssertionError(f"timed out after {timeout_s}s waiting to kill the job {what}{tail()}")
        time.sleep(poll_s)


# ---------------------------------------------------------------- a deliberate pause, in test code only

# Runs a job script with a pause injected at one precise point, announced by creating the file
# $TEST_PAUSE_MARKER, so the test can SIGKILL the job exactly there. Production code has no hook:
# this wraps library functions from the outside before the job starts.
#   TEST_PAUSE_AT=s3-complete   the Nth projects part upload to S3: parts sent, CompleteMultipartUpload not
#                               (small parts are forced through the multipart path)
#   TEST_PAUSE_AT=local-rename  the Nth projects part in a folder: temp file written, not yet renamed
PAUSE_BOOTSTRAP = r"""
import os, runpy, sys, threading, time
at, nth, marker = os.environ["TEST_PAUSE_AT"], int(os.environ.get("TEST_PAUSE_NTH", "1")), os.environ["TEST_PAUSE_MARKER"]
seen = {"n": 0}
lock = threading.Lock()

def pause_here(what):
    with lock:
        seen["n"] += 1
        hit = seen["n"] == nth
    if hit:
        with open(marker + ".tmp", "w") as out:  # renamed whole: the test never reads a marker half written
            out.write(what)
        os.rename(marker + ".tmp", marker)
        while True:
            time.sleep(60)

if at == "s3-complete":
    import multiverse_etl.s3_storage as storage
    storage.MULTIPART_THRESHOLD = 1024
    make_client = storage.s3_client

    def paused_client(s3, **options):
        client = make_client(s3, **options)
        def before_complete(params, **kwargs):
            if "/raw/projects/" in "/" + params.get("Key", ""):
                pause_here(params["Key"])
        client.meta.events.register("before-parameter-build.s3.CompleteMultipartUpload", before_complete)
        return client

    storage.s3_client = paused_client
elif at == "local-rename":
    real_replace = os.replace

    def paused_replace(src, dst, *args, **kwargs):
        if "/raw/projects/" in str(dst):
            pause_here(str(dst))
        return real_replace(src, dst, *args, **kwargs)

    os.replace = paused_replace
else:
    raise SystemExit(f"unknown TEST_PAUSE_AT {at!r}")
script, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def paused(command: list[str]) -> list[str]:
    """`command` (python jobs/x.py ...) run through PAUSE_BOOTSTRAP."""
    return [command[0], "-c", PAUSE_BOOTSTRAP, *command[1:]]
