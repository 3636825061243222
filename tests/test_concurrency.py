"""Two pipeline runs started at the same time on the same lake: the second refuses to start.

The lake's writer lock (`multiverse_etl.lock`, a conditional put) is taken by the job before
anything else: the second `jobs/pipeline.py` ends within seconds, non-zero, naming the holder, and
writes nothing. The first goes on; it is part of tests/test_crash_recovery.py's chain (killed later
and repaired), whose end state proves there was no corrupted table and no doubled load.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import threading

import pytest

from multiverse_etl.lock import LOCK_KEY, LakeLocked, acquire
from multiverse_etl.storage import LocalStorage


@pytest.fixture(scope="module")
def chain(crash_chain_run):
    return crash_chain_run


def test_the_second_of_two_simultaneous_pipelines_refuses_at_once_naming_the_holder(chain):
    step = chain.steps["refused pipeline"]
    assert step.returncode not in (0, None, -9), step.output[-2000:]
    # At once, by events rather than a stopwatch: the holder was still running when the refused one had ended (the
    # chain kills the holder later, mid-transform: kill_when fails if its job ended first), and the refused one
    # neither started an extraction nor Spark.
    assert chain.steps["pipeline killed between bronze and silver"].killed_after_s is not None
    assert "extract run " not in step.output and " ready (master=" not in step.output, step.output[-2000:]
    errors = [line for line in step.output.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "locked by" in errors[0], step.output[-2000:]
    assert "Traceback" not in step.output


def test_the_refused_pipeline_wrote_nothing_and_the_lake_holds_one_run_loaded_once(chain):
    refused = chain.steps["refused pipeline"].lake
    assert len(refused["run_plans"]) <= 1 and len(refused["manifests"]) <= 1  # only the winner's (if it got there)
    final = chain.steps["final re-run"].lake
    assert len(final["run_plans"]) == 1 and len(final["manifests"]) == 1
    assert chain.audit == [(chain.run_ids[0], "loaded")]
    assert chain.comparison.ok, chain.comparison.describe()


class Interleaved:
    """A storage that makes two threads, A and B, replace the same dead holder's lock in the worst order:

    both find the dead lock; A deletes it and takes the lock; only then B deletes (A's fresh lock) and puts.
    Waits are bounded, so a lock that avoids this interleaving is not held up.
    """

    def __init__(self, inner) -> None:
        self.inner = inner
        self.b_read = threading.Event()
        self.a_took = threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get(self, key):
        data = self.inner.get(key)
        if threading.current_thread().name == "B":
            self.b_read.set()
        return data

    def delete(self, key):
        if threading.current_thread().name == "A":
            self.b_read.wait(5)
        else:
            self.a_took.wait(5)
        self.inner.delete(key)

    def put_if_absent(self, key, data):
        taken = self.inner.put_if_absent(key, data)
        if taken and threading.current_thread().name == "A":
            self.a_took.set()
        return taken


def test_two_writers_replacing_a_dead_holders_lock_never_both_get_it(tmp_path):
    """Two re-runs started together after a crash never both hold the lake: when both read the same stale lock
    (dead holder on this host, or expired), only one replaces it; the other is refused."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    storage = LocalStorage(str(tmp_path))
    storage.put(
        LOCK_KEY,
        json.dumps(
            {
                "owner": "crashed-transform",
                "host": socket.gethostname(),
                "pid": int(dead.stdout),
                "acquired_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "ttl_s": 3600,
            }
        ).encode(),
    )
    racing = Interleaved(storage)
    holders, refused = [], []

    def start(name: str) -> None:
        try:
            acquire(racing, owner=f"rerun-{name}")
            holders.append(name)
        except LakeLocked as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=start, args=(name,), name=name) for name in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(holders) == 1 and len(refused) == 1, f"holders: {holders}"
    assert json.loads(storage.get(LOCK_KEY))["owner"] == f"rerun-{holders[0]}"
