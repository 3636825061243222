"""A lock in the lake, so two writers never run on the same lake at once.

It is one object created with a conditional put (S3 `If-None-Match: *`, `O_EXCL` on a folder):
exactly one of two concurrent starters wins, the other fails at once with a message naming the
holder. A crashed holder leaves its lock behind; it expires after `ttl_s` (the holder's run id and
start time are in it); on the same host a holder whose process is gone is recognised at once; elsewhere
an operator removes it with `--break-lock` after checking nothing runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
from contextlib import contextmanager
from typing import Iterator

from .storage import ObjectNotFound, Storage

log = logging.getLogger(__name__)

LOCK_KEY = "_locks/writer.lock"
TAKEOVER_PREFIX = "_locks/takeover-"
DEFAULT_TTL_S = 6 * 3600
TAKEOVER_MEMORY = dt.timedelta(hours=1)


class LakeLocked(RuntimeError):
    """Another writer holds the lake's lock."""

    user_facing = True


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def read_lock(storage: Storage) -> dict | None:
    try:
        return json.loads(storage.get(LOCK_KEY))
    except ObjectNotFound:
        return None
    except json.JSONDecodeError:
        # Never break what we cannot read: treat it as freshly taken.
        return {"owner": "an unreadable lock", "acquired_at": _now().isoformat(), "ttl_s": DEFAULT_TTL_S}


def acquire(storage: Storage, owner: str, ttl_s: int = DEFAULT_TTL_S) -> dict:
    """Take the lock or raise LakeLocked; an expired lock is replaced (logged)."""
    body = {
        "owner": owner,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "acquired_at": _now().isoformat(),
        "ttl_s": ttl_s,
    }
    payload = json.dumps(body).encode()
    if storage.put_if_absent(LOCK_KEY, payload):
        log.info("lake lock taken by %s", owner)
        return body
    held = read_lock(storage) or {}
    acquired = dt.datetime.fromisoformat(held.get("acquired_at", "1970-01-01T00:00:00+00:00"))
    expired = _now() - acquired > dt.timedelta(seconds=int(held.get("ttl_s", ttl_s)))
    if expired or _holder_died_here(held):
        # Only one starter may replace a given stale lock: the takeover itself is a conditional put
        # keyed by the stale lock's content, so a racer cannot delete the winner's fresh lock.
        stale = hashlib.sha256(json.dumps(held, sort_keys=True).encode()).hexdigest()[:16]
        if storage.put_if_absent(f"{TAKEOVER_PREFIX}{stale}", payload):
            why = "expired" if expired else "left by a process of this host that is gone"
            log.warning("lake lock of %s %s (taken %s); replacing it", held.get("owner"), why, held.get("acquired_at"))
            storage.delete(LOCK_KEY)
            if storage.put_if_absent(LOCK_KEY, payload):
                _forget_old_takeovers(storage)
                return body
        held = read_lock(storage) or held
    raise LakeLocked(
        f"the lake {storage.uri()} is locked by {held.get('owner')} (host {held.get('host')}, pid {held.get('pid')}, "
        f"since {held.get('acquired_at')}); wait for it to finish, or if it crashed run with --break-lock"
    )


def _holder_died_here(held: dict) -> bool:
    """A holder on this very host whose process no longer exists (killed -9, crashed) holds nothing."""
    if held.get("host") != socket.gethostname() or not isinstance(held.get("pid"), int):
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


def _forget_old_takeovers(storage: Storage, older_than: dt.timedelta = TAKEOVER_MEMORY) -> None:
    """Delete takeover markers old enough that no starter can still be racing for their stale lock.

    A marker must outlive every racer that read the same stale lock (they fail on it); a racer
    gives up within seconds, so an hour is ample, and markers never pile up.
    """
    for info in list(storage.list(TAKEOVER_PREFIX)):
        try:
            taken = dt.datetime.fromisoformat(json.loads(storage.get(info.key))["acquired_at"])
        except (ObjectNotFound, ValueError, KeyError, TypeError):
            continue
        if _now() - taken > older_than:
            storage.delete(info.key)


def release(storage: Storage, owner: str, body: dict | None = None) -> None:
    """Remove the lock if it is still ours (`body`: the exact lock we took; else matched by owner)."""
    held = read_lock(storage)
    ours = held is not None and (held == body if body is not None else held.get("owner") == owner)
    if ours:
        storage.delete(LOCK_KEY)
        log.info("lake lock released by %s", owner)


def break_lock(storage: Storage) -> dict | None:
    held = read_lock(storage)
    storage.delete(LOCK_KEY)
    if held:
        log.warning("lake lock of %s broken by operator", held.get("owner"))
    return held


@contextmanager
def lake_lock(storage: Storage, owner: str, ttl_s: int = DEFAULT_TTL_S) -> Iterator[dict]:
    """Hold the lake's writer lock for the duration of the block."""
    body = acquire(storage, owner, ttl_s)
    try:
        yield body
    finally:
        release(storage, owner, body)
