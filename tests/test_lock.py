"""The lake lock: a lease renewed while its holder lives, taken over conditionally, fenced; on a folder and on local S3."""

import concurrent.futures
import datetime as dt
import json
import threading

import pytest

from multiverse_etl import lock as lock_module
from multiverse_etl.lock import (
    LOCK_KEY,
    LakeLocked,
    LockLostError,
    acquire,
    break_lock,
    check_conditional_writes,
    current_lock,
    lake_lock,
    read_lock,
)
from multiverse_etl.storage import LocalStorage, StorageError


class FakeClock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class Recording:
    """A storage that records deletes and can lose the answer of a write that went through."""

    def __init__(self, inner, lose_answer_of: str = "") -> None:
        self.inner, self.lose_answer_of, self.deleted = inner, lose_answer_of, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _maybe_lose(self, name, result):
        if name == self.lose_answer_of:
            self.lose_answer_of = ""
            raise StorageError(f"{name}: connection reset after the write went through")
        return result

    def put_if_absent(self, key, data):
        taken = self.inner.put_if_absent(key, data)
        return self._maybe_lose("put_if_absent", taken) if key == LOCK_KEY else taken

    def put_if_version(self, key, data, version):
        written = self.inner.put_if_version(key, data, version)
        return self._maybe_lose("put_if_version", written) if key == LOCK_KEY else written

    def delete(self, key):
        self.deleted.append(key)
        self.inner.delete(key)


def test_second_holder_is_refused_with_the_first_holders_name(storage):
    with lake_lock(storage, "pipeline-run-1"):
        with pytest.raises(LakeLocked, match="locked by pipeline-run-1"):
            acquire(storage, "pipeline-run-2")
    assert read_lock(storage) is None  # released on exit
    with lake_lock(storage, "pipeline-run-2") as held:
        assert held.owner == "pipeline-run-2"


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


def test_renewal_keeps_the_lock_past_its_lease_and_a_silent_holder_is_taken_over_without_a_delete(storage):
    clock = FakeClock()
    first = acquire(storage, "long-run", lease_s=600, clock=clock)
    for _ in range(5):  # 5 x 300 s: far past one lease, renewed all along
        clock.advance(300)
        assert first.renew()
        with pytest.raises(LakeLocked, match="locked by long-run"):
            acquire(storage, "next-run", lease_s=600, clock=clock)
    clock.advance(601)  # the holder went silent for a whole lease
    recording = Recording(storage)
    second = acquire(recording, "next-run", lease_s=600, clock=clock)
    assert all(".probe-" in key for key in recording.deleted)  # the takeover deletes nothing (only the probe goes)
    assert second.generation > first.generation and second.fencing_token == second.generation
    with pytest.raises(LockLostError, match="taken over by next-run"):
        first.check_still_held()
    first.release()  # the loser leaves the new holder's lock alone
    assert read_lock(storage)["owner"] == "next-run"
    second.check_still_held()
    second.release()
    assert read_lock(storage) is None


def test_a_taker_gets_a_generation_above_the_holder_it_replaced_whatever_the_clocks(storage):
    stale = {
        "owner": "fast-clock-host",
        "token": "t",
        "generation": 10**15,
        "lease_s": 60,
        "renewed_at": "2020-01-01T00:00:00+00:00",
    }  # a generation from a clock far ahead of ours
    storage.put(LOCK_KEY, json.dumps(stale).encode())
    assert acquire(storage, "next").generation == 10**15 + 1


def test_two_takers_of_one_expired_lock_never_both_win(storage):
    clock = FakeClock()
    acquire(storage, "crashed", lease_s=60, clock=clock)
    clock.advance(61)
    stale = lock_module._read(storage)
    winners = [
        lock_module._write(storage, dict(read_lock(storage), token=f"t{i}", owner=f"taker-{i}"), stale, clock)
        for i in range(2)
    ]  # both replace the version they read: the second's If-Match fails
    assert [w is not None for w in winners] == [True, False]
    assert read_lock(storage)["owner"] == "taker-0"


def test_a_lock_write_whose_answer_was_lost_is_recognised_as_ours(storage):
    clock = FakeClock()
    held = acquire(Recording(storage, lose_answer_of="put_if_absent"), "lost-answer", clock=clock)
    assert held.owner == "lost-answer"  # not "locked by lost-answer"
    held.storage = Recording(storage, lose_answer_of="put_if_version")
    clock.advance(200)
    assert held.renew() and read_lock(storage)["renewed_at"] == clock.now.isoformat()
    held.check_still_held()
    held.release()
    assert read_lock(storage) is None


def test_an_unreadable_lock_blocks_for_one_lease_then_expires(tmp_path):
    storage = LocalStorage(str(tmp_path / "lake"))
    storage.put(LOCK_KEY, b"{not json")
    written = storage.get_versioned(LOCK_KEY).modified
    clock = FakeClock()
    clock.now = written + dt.timedelta(seconds=30)
    with pytest.raises(LakeLocked, match="an unreadable lock"):
        acquire(storage, "fresh", lease_s=600, clock=clock)
    clock.now = written + dt.timedelta(seconds=601)
    assert acquire(storage, "fresh", lease_s=600, clock=clock).owner == "fresh"


def test_an_old_format_expired_lock_is_replaced_and_break_lock_removes_it(storage):
    stale = {
        "owner": "crashed",
        "acquired_at": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=7)).isoformat(),
        "ttl_s": 3600,
    }
    storage.put(LOCK_KEY, json.dumps(stale).encode())
    assert acquire(storage, "fresh").owner == "fresh"
    assert break_lock(storage)["owner"] == "fresh"
    assert read_lock(storage) is None


def test_lock_is_released_when_the_body_fails_and_current_lock_is_set_only_inside(storage):
    assert current_lock() is None
    with pytest.raises(RuntimeError):
        with lake_lock(storage, "failing") as held:
            assert current_lock() is held
            lock_module.check_still_held()
            raise RuntimeError("boom")
    assert read_lock(storage) is None and current_lock() is None
    lock_module.check_still_held()  # no lock held: nothing to check


def test_a_lock_left_by_a_dead_process_of_this_host_is_taken_over(storage):
    import os
    import socket
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(child.stdout)  # that process has exited
    held = {
        "owner": "killed",
        "host": socket.gethostname(),
        "pid": dead_pid,
        "acquired_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "ttl_s": 3600,
    }
    storage.put(LOCK_KEY, json.dumps(held).encode())
    assert acquire(storage, "after-crash").owner == "after-crash"
    alive = dict(held, pid=os.getppid())  # a live process still holds it
    storage.put(LOCK_KEY, json.dumps(alive).encode())
    with pytest.raises(LakeLocked):
        acquire(storage, "too-early")


def test_a_broken_lock_is_noticed_by_its_holder_before_the_next_commit(storage):
    with lake_lock(storage, "transform"):
        break_lock(storage)
        other = acquire(storage, "operator-restart")
        with pytest.raises(LockLostError, match="transform.*taken over by operator-restart"):
            lock_module.check_still_held()
    assert read_lock(storage)["token"] == other.token  # not released by the loser


def test_the_heartbeat_renews_the_lease_in_the_background(tmp_path):
    storage = LocalStorage(str(tmp_path / "lake"))
    renewed = threading.Event()
    versions = []

    class Watching(Recording):
        def put_if_version(self, key, data, version):
            written = super().put_if_version(key, data, version)
            if key == LOCK_KEY:
                versions.append(written)
                renewed.set()
            return written

    with lake_lock(Watching(storage), "beating", lease_s=0.3) as held:
        assert renewed.wait(30), "the heartbeat never renewed the lock"
        assert versions[0] is not None and held.lost is None
    assert read_lock(storage) is None


def test_a_store_that_ignores_if_none_match_is_refused_at_start(tmp_path):
    class Ignoring(LocalStorage):
        def put_if_absent(self, key, data):
            self.put(key, data)
            return True

    with pytest.raises(StorageError, match="ignores conditional writes"):
        check_conditional_writes(Ignoring(str(tmp_path / "lake")))
    with pytest.raises(StorageError, match="ignores conditional writes"):
        acquire(Ignoring(str(tmp_path / "lake2")), "anyone")


def test_local_s3_honours_conditional_writes(s3_config):
    from multiverse_etl.storage import open_storage

    storage = open_storage(f"{s3_config.lake.root}/probe-check", s3_config.s3)
    check_conditional_writes(storage)  # moto server: If-None-Match and If-Match are honoured
    storage.put("k", b"1")
    version = storage.get_versioned("k").version
    assert storage.put_if_version("k", b"2", '"0123"') is None
    assert storage.put_if_version("k", b"2", version) is not None
    assert storage.delete_if_version("k", version) is False and storage.get("k") == b"2"


def test_a_holder_cut_off_from_the_store_keeps_the_lock_for_one_lease_then_counts_it_lost(tmp_path):
    class CutOff(Recording):
        cut = False

        def put_if_version(self, key, data, version):
            if self.cut:
                raise StorageError("endpoint unreachable")
            return super().put_if_version(key, data, version)

        def get_versioned(self, key):
            if self.cut:
                raise StorageError("endpoint unreachable")
            return self.inner.get_versioned(key)

    clock = FakeClock()
    store = CutOff(LocalStorage(str(tmp_path / "lake")))
    held = acquire(store, "cut-off", lease_s=600, clock=clock)
    store.cut = True
    clock.advance(400)
    assert held.renew()  # not renewed, but the lease still runs: nobody may take it yet
    clock.advance(201)
    assert not held.renew() and "not renewed for 600s" in held.lost
    with pytest.raises(LockLostError, match="lake.lock_lease_s"):
        held.check_still_held()
