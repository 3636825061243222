"""The lake lock: one winner among concurrent starters, on a folder and on local S3."""

import concurrent.futures
import datetime as dt
import json

import pytest

from multiverse_etl.lock import LOCK_KEY, LakeLocked, acquire, break_lock, lake_lock, read_lock


def test_second_holder_is_refused_with_the_first_holders_name(storage):
    with lake_lock(storage, "pipeline-run-1"):
        with pytest.raises(LakeLocked, match="locked by pipeline-run-1"):
            acquire(storage, "pipeline-run-2")
    assert read_lock(storage) is None  # released on exit
    with lake_lock(storage, "pipeline-run-2") as held:
        assert held["owner"] == "pipeline-run-2"


def test_exactly_one_of_many_concurrent_starters_wins(storage):
    def attempt(i):
        try:
            acquire(storage, f"starter-{i}")
            return True
        except LakeLocked:
            return False

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert results.count(True) == 1


def test_expired_lock_is_replaced_and_break_lock_removes_it(storage):
    stale = {"owner": "crashed", "acquired_at": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=7)).isoformat(), "ttl_s": 3600}
    storage.put(LOCK_KEY, json.dumps(stale).encode())
    assert acquire(storage, "fresh")["owner"] == "fresh"
    assert break_lock(storage)["owner"] == "fresh"
    assert read_lock(storage) is None


def test_lock_is_released_when_the_body_fails(storage):
    with pytest.raises(RuntimeError):
        with lake_lock(storage, "failing"):
            raise RuntimeError("boom")
    assert read_lock(storage) is None


def test_a_lock_left_by_a_dead_process_of_this_host_is_taken_over(storage):
    import os
    import socket
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(child.stdout)  # that process has exited
    held = {"owner": "killed", "host": socket.gethostname(), "pid": dead_pid,
            "acquired_at": dt.datetime.now(dt.timezone.utc).isoformat(), "ttl_s": 3600}
    storage.put(LOCK_KEY, json.dumps(held).encode())
    assert acquire(storage, "after-crash")["owner"] == "after-crash"
    alive = dict(held, pid=os.getppid())  # a live process still holds it
    storage.put(LOCK_KEY, json.dumps(alive).encode())
    with pytest.raises(LakeLocked):
        acquire(storage, "too-early")


def test_a_holder_whose_lock_was_taken_over_does_not_release_the_new_holders_lock(storage):
    with lake_lock(storage, "transform") as first:
        taken_over = dict(first, pid=first["pid"] + 1, acquired_at=dt.datetime.now(dt.timezone.utc).isoformat())
        storage.put(LOCK_KEY, json.dumps(taken_over).encode())  # the same owner name, another process
    assert read_lock(storage) == taken_over


def test_old_takeover_markers_are_forgotten_and_recent_ones_kept(storage):
    from multiverse_etl.lock import TAKEOVER_PREFIX

    now = dt.datetime.now(dt.timezone.utc)
    storage.put(f"{TAKEOVER_PREFIX}old", json.dumps({"owner": "a", "acquired_at": (now - dt.timedelta(hours=2)).isoformat()}).encode())
    storage.put(f"{TAKEOVER_PREFIX}recent", json.dumps({"owner": "b", "acquired_at": now.isoformat()}).encode())
    stale = {"owner": "crashed", "acquired_at": (now - dt.timedelta(hours=7)).isoformat(), "ttl_s": 3600}
    storage.put(LOCK_KEY, json.dumps(stale).encode())
    assert acquire(storage, "fresh")["owner"] == "fresh"
    markers = sorted(info.key.rsplit("-", 1)[-1] for info in storage.list(TAKEOVER_PREFIX))
    assert "old" not in markers and "recent" in markers and len(markers) == 2  # + the marker of this takeover
