"""A lease on the lake that lives as long as its holder, so two writers never write it at once.

One object, `_locks/writer.lock`, created with a conditional put (S3 `If-None-Match: *`, a hard link on a
folder). The holder renews it every third of `lease_s` (lake.lock_lease_s, 600 s) with a conditional overwrite
of the version it wrote (S3 `If-Match` on the ETag; a guarded atomic replace on a folder). A lock not renewed
for its lease (a crashed or cut-off holder), or left by a dead process of this host, is taken over with one
conditional overwrite of the version read: of two takers exactly one wins, and nothing is deleted blindly.
An unreadable lock expires a lease after it was written. A write whose answer was lost is recognised as ours
on read-back (its random token). Each hold has a generation number (the fencing token): one above the holder
it replaced, and at least the acquisition time in milliseconds, so it grows from one hold to the next.
Before a commit the holder calls `check_still_held()`, which stops it with `LockLostError` if it lost the lake.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from .errors import EtlError
from .storage import ObjectNotFound, Storage, StorageError

log = logging.getLogger(__name__)

LOCK_KEY = "_locks/writer.lock"
DEFAULT_LEASE_S = 600
Clock = Callable[[], dt.datetime]


class LakeLocked(EtlError):
    """Another writer holds the lake's lock."""


class LockLostError(EtlError):
    """This writer no longer holds the lake's lock (taken over, broken, or not renewed in time): stop, commit nothing."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class _Seen:
    body: Optional[dict[str, Any]]  # None: the object is not a lock we can read
    version: str
    modified: dt.datetime


def _read(storage: Storage) -> Optional[_Seen]:
    try:
        found = storage.get_versioned(LOCK_KEY)
    except ObjectNotFound:
        return None
    try:
        body = json.loads(found.data)
    except (ValueError, UnicodeDecodeError):
        body = None
    return _Seen(body if isinstance(body, dict) else None, found.version, found.modified)


def read_lock(storage: Storage) -> Optional[dict[str, Any]]:
    """The lock as stored (None when the lake is free); an unreadable one is described, with its write time."""
    seen = _read(storage)
    if seen is None:
        return None
    return (
        seen.body if seen.body is not None else {"owner": "an unreadable lock", "renewed_at": seen.modified.isoformat()}
    )


def _time(value: Any) -> Optional[dt.datetime]:
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _expires_at(seen: _Seen) -> dt.datetime:
    """Last renewal + lease (older locks: acquired_at + ttl_s); an unreadable lock counts from its write time."""
    body = seen.body or {}
    lease = body.get("lease_s", body.get("ttl_s"))
    lease = lease if isinstance(lease, (int, float)) and not isinstance(lease, bool) else DEFAULT_LEASE_S
    since = _time(body.get("renewed_at", body.get("acquired_at"))) or seen.modified
    return since + dt.timedelta(seconds=lease)


def _generation(body: Optional[dict[str, Any]]) -> int:
    value = (body or {}).get("generation")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


class HeldLock:
    """The lake's lock while we hold it: renewed by a heartbeat thread, checked before each commit."""

    def __init__(self, storage: Storage, body: dict[str, Any], version: str, clock: Clock = _now) -> None:
        self.storage, self.body, self.version, self.clock = storage, body, version, clock
        self.owner: str = body["owner"]
        self.token: str = body["token"]
        self.generation: int = body["generation"]
        self.lease_s: float = body["lease_s"]
        self.lost: Optional[str] = None  # why we no longer hold it
        self._renewed = clock()
        self._mutex = threading.RLock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def fencing_token(self) -> int:
        """The generation of this hold: larger than every earlier holder's (record it with what it commits)."""
        return self.generation

    def _is_ours(self, body: Optional[dict[str, Any]]) -> bool:
        return body is not None and body.get("token") == self.token

    def renew(self) -> bool:
        """Extend the lease with a conditional overwrite; False once the lock is lost (never raises for it)."""
        with self._mutex:
            if self.lost is None:
                self._renew(self.clock())
            return self.lost is None

    def _renew(self, now: dt.datetime) -> None:
        body = dict(self.body, renewed_at=now.isoformat())
        for _ in range(2):
            try:
                version = self.storage.put_if_version(LOCK_KEY, _encode(body), self.version)
            except StorageError as exc:
                log.warning("lake lock: renewing failed (%s); reading it back", exc)
                version = None
            if version is not None:
                self.body, self.version, self._renewed = body, version, now
                return
            try:
                seen = _read(self.storage)
            except StorageError as exc:
                log.warning("lake lock: cannot read it back (%s); next try in %.0fs", exc, self.lease_s / 3)
                break
            if seen is None or not self._is_ours(seen.body):
                by = "removed (--break-lock?)" if seen is None else f"taken over by {_describe(seen.body)}"
                self.lost = f"the lake lock of {self.owner} (generation {self.generation}) was {by}"
                return
            self.version = seen.version  # ours: this write, or an earlier one whose answer was lost
            if seen.body == body:
                self.body, self._renewed = body, now
                return
        if now - self._renewed > dt.timedelta(seconds=self.lease_s):
            self.lost = f"the lake lock of {self.owner} was not renewed for {self.lease_s:.0f}s (lake.lock_lease_s)"

    def check_still_held(self) -> None:
        """Raise LockLostError unless we still hold the lake: renews now, so a commit that follows has a fresh lease."""
        if not self.renew():
            raise LockLostError(f"{self.lost}: stopping without committing; another writer may be running")

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="lake-lock-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            if not self.renew():
                log.error("%s; this job stops before its next commit", self.lost)
                return

    def release(self) -> None:
        """Stop renewing and remove the lock if it is still ours (a conditional delete of our version)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            if self.lost is not None:
                log.warning("%s; not released", self.lost)
                return
            if not self.storage.delete_if_version(LOCK_KEY, self.version):
                seen = _read(self.storage)
                # Gone: our delete went through and its answer was lost (its retry met no object), or it was broken.
                if seen is not None and (
                    not self._is_ours(seen.body) or not self.storage.delete_if_version(LOCK_KEY, seen.version)
                ):
                    log.warning("lake lock of %s was no longer ours at release; left as it is", self.owner)
                    return
            self.lost = "released"
            log.info("lake lock released by %s (generation %d)", self.owner, self.generation)


def _describe(body: Optional[dict[str, Any]]) -> str:
    body = body or {}
    return f"{body.get('owner')} (host {body.get('host')}, pid {body.get('pid')}, generation {body.get('generation')})"


def _held_if_ours(storage: Storage, body: dict[str, Any], clock: Clock) -> Optional[HeldLock]:
    """Read back after a write: the lock is ours when it carries our token (even if the write's answer was lost)."""
    seen = _read(storage)
    if seen is None or seen.body is None or seen.body.get("token") != body["token"]:
        return None
    return HeldLock(storage, seen.body, seen.version, clock)


def _write(storage: Storage, body: dict[str, Any], over: Optional[_Seen], clock: Clock) -> Optional[HeldLock]:
    """One conditional write: create (`over` None) or replace exactly the version `over` read; ours or None."""
    try:
        if over is None:
            storage.put_if_absent(LOCK_KEY, _encode(body))
        else:
            storage.put_if_version(LOCK_KEY, _encode(body), over.version)
    except StorageError as exc:
        log.warning("lake lock: writing it failed (%s); reading it back", exc)
    return _held_if_ours(storage, body, clock)


def acquire(storage: Storage, owner: str, lease_s: float = DEFAULT_LEASE_S, clock: Clock = _now) -> HeldLock:
    """Take the lock or raise LakeLocked; an expired lock (or a dead local holder's) is taken over, logged."""
    check_conditional_writes(storage)
    seen = None
    for _ in range(3):  # the lock may come and go between our read and our write
        now = clock()
        seen = _read(storage)
        stale = seen is not None and (_expires_at(seen) < now or _holder_died_here(seen.body))
        if seen is not None and not stale:
            break
        # Above the holder it replaces, and above any earlier hold as long as clocks move forward.
        generation = max(_generation(seen.body if seen else None) + 1, int(now.timestamp() * 1000))
        body = {
            "owner": owner,
            "token": uuid.uuid4().hex,
            "generation": generation,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": now.isoformat(),
            "renewed_at": now.isoformat(),
            "lease_s": lease_s,
        }
        held = _write(storage, body, seen, clock)
        if held is not None:
            if seen is not None:
                why = "expired" if _expires_at(seen) < now else "left by a process of this host that is gone"
                log.warning(
                    "lake lock of %s %s (renewed %s); taken over",
                    _describe(seen.body),
                    why,
                    (seen.body or {}).get("renewed_at", seen.modified.isoformat()),
                )
            log.info("lake lock taken by %s (generation %d, lease %ss)", owner, generation, lease_s)
            return held
    holder = (seen.body if seen else None) or {"owner": "an unreadable lock"}
    raise LakeLocked(
        f"the lake {storage.uri()} is locked by {_describe(holder)}, renewed {holder.get('renewed_at', '?')}; "
        "wait for it to finish, or if it crashed run with --break-lock"
    )


def _holder_died_here(held: Optional[dict[str, Any]]) -> bool:
    """A holder on this very host whose process no longer exists (killed -9, crashed) holds nothing."""
    if not held or held.get("host") != socket.gethostname() or not isinstance(held.get("pid"), int):
        return False
    if held["pid"] == os.getpid():
        return False
    try:
        os.kill(held["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


_PROBED: set[str] = set()


def check_conditional_writes(storage: Storage) -> None:
    """Once per lake: refuse a store that ignores If-None-Match / If-Match (the lock would not exclude anyone)."""
    if storage.uri() in _PROBED:
        return
    probe = f"_locks/.probe-{uuid.uuid4().hex}"
    try:
        # A unique key: a refused create whose object holds our bytes is our own write whose answer was lost
        # (the client retried it, and the retry met the object it had just made).
        created = storage.put_if_absent(probe, b"1") or _holds(storage, probe, b"1")
        created_again = storage.put_if_absent(probe, b"2")
        replaced = storage.put_if_version(probe, b"3", '"0123456789abcdef0123456789abcdef"')
    finally:
        storage.delete(probe)
    if not created or created_again or replaced is not None:
        raise StorageError(
            f"the store of {storage.uri()} ignores conditional writes (If-None-Match / If-Match): the lake lock "
            "cannot keep two writers apart there; use AWS S3 or an endpoint that honours them"
        )
    _PROBED.add(storage.uri())


def _holds(storage: Storage, key: str, data: bytes) -> bool:
    try:
        return storage.get(key) == data
    except ObjectNotFound:
        return False


def break_lock(storage: Storage) -> Optional[dict[str, Any]]:
    """Remove whatever lock is there (an operator's decision, after checking nothing runs)."""
    held = read_lock(storage)
    storage.delete(LOCK_KEY)
    if held:
        log.warning("lake lock of %s broken by operator", held.get("owner"))
    return held


_current: Optional[HeldLock] = None


def current_lock() -> Optional[HeldLock]:
    """The lake lock this process holds (inside `lake_lock`), or None: the transform fences its commits with it."""
    return _current


def check_still_held() -> None:
    """Before a commit: raise LockLostError if this process held the lake's lock and lost it; no-op without a lock."""
    if _current is not None:
        _current.check_still_held()


@contextmanager
def lake_lock(
    storage: Storage, owner: str, lease_s: float = DEFAULT_LEASE_S, clock: Clock = _now
) -> Iterator[HeldLock]:
    """Hold the lake's writer lock, renewed by a heartbeat, for the duration of the block."""
    global _current
    held = acquire(storage, owner, lease_s, clock)
    held.start_heartbeat()
    previous, _current = _current, held
    try:
        yield held
    finally:
        _current = previous
        held.release()
