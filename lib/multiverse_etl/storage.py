"""One small storage interface over the lake root: a local folder or an S3 prefix.

The driver writes landing parts, manifests, state and locks through it; Spark reads the same
objects through `spark_path`. Keys are always '/'-separated and relative to the lake root.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol

from .config import S3Config
from .errors import EtlError


class StorageError(EtlError):
    """A lake read or write failed; the message names the object and what to check (one line, no traceback)."""


class ObjectNotFound(StorageError, KeyError):
    """The key does not exist in the lake (a KeyError too: a missing key, as in a mapping)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class Versioned:
    """An object's bytes with its version tag (the S3 ETag; a content hash on a folder) and when it was written."""

    data: bytes
    version: str
    modified: dt.datetime  # aware, UTC


class Storage(Protocol):
    root: str

    def put(self, key: str, data: bytes) -> None: ...
    def put_if_absent(self, key: str, data: bytes) -> bool: ...
    def put_if_version(self, key: str, data: bytes, version: str) -> Optional[str]: ...
    def delete_if_version(self, key: str, version: str) -> bool: ...
    def get(self, key: str) -> bytes: ...
    def get_versioned(self, key: str) -> Versioned: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...
    def delete(self, key: str) -> None: ...
    def uri(self, key: str = "") -> str: ...
    def check(self) -> None: ...


class LocalStorage:
    """A folder as the lake; writes are atomic (temp file + rename) so readers never see half a file."""

    def __init__(self, root: str) -> None:
        self.root = str(Path(root.removeprefix("file://")).resolve())

    def _path(self, key: str) -> Path:
        return Path(self.root, *key.split("/"))

    def _staged(self, key: str, data: bytes) -> tuple[Path, str]:
        """`data` written to a temp file beside the key's path (its final name comes atomically)."""
        path = self._path(key)
        with _local_errors("writing", path, self.root):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        return path, tmp

    def put(self, key: str, data: bytes) -> None:
        path, tmp = self._staged(key, data)
        try:
            with _local_errors("writing", path, self.root):
                os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create-if-absent with the content already in place (a hard link never exposes a half file)."""
        path, tmp = self._staged(key, data)
        try:
            with self._guard(path), _local_errors("writing", path, self.root, expected=(FileExistsError,)):
                os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True

    def put_if_version(self, key: str, data: bytes, version: str) -> Optional[str]:
        """Replace the object only while it is still `version` (an atomic rename under the key's guard); the new
        version, or None when it changed or is gone (S3's If-Match, on a folder)."""
        path, tmp = self._staged(key, data)
        try:
            with self._guard(path):
                if _version_of(path) != version:
                    return None
                with _local_errors("writing", path, self.root):
                    os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return _content_version(data)

    def delete_if_version(self, key: str, version: str) -> bool:
        """Delete the object only while it is still `version`; False when it changed or is gone."""
        path = self._path(key)
        with self._guard(path):
            if _version_of(path) != version:
                return False
            with _local_errors("deleting", path, self.root):
                path.unlink()
        return True

    def get_versioned(self, key: str) -> Versioned:
        path = self._path(key)
        try:
            with _local_errors("reading", path, self.root, expected=(FileNotFoundError,)):
                data, stat = path.read_bytes(), path.stat()
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.uri(key)} does not exist") from None
        modified = dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc)
        return Versioned(data, _content_version(data), modified)

    @contextlib.contextmanager
    def _guard(self, path: Path) -> Iterator[None]:
        """An exclusive flock per folder, on a file outside the lake: conditional writes there never interleave.

        The file lives only while it is held: its holder removes it before letting go, and a waiter that then gets
        the lock of a removed file tries again on the path's current one (every lake folder once left a file in
        the temp folder for good)."""
        with _local_errors("locking", path, self.root):
            path.parent.mkdir(parents=True, exist_ok=True)
        guard = guard_path(path.parent)
        while True:
            with _local_errors("locking", guard, self.root):
                handle = open(guard, "a+b")
            with handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    current = os.stat(guard).st_ino
                except FileNotFoundError:
                    current = None
                if current != os.fstat(handle.fileno()).st_ino:  # its holder removed it while this one waited
                    continue
                try:
                    yield
                finally:
                    guard.unlink(missing_ok=True)  # still locked: no one else holds this file
                return

    def get(self, key: str) -> bytes:
        try:
            with _local_errors("reading", self._path(key), self.root, expected=(FileNotFoundError,)):
                return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.uri(key)} does not exist") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self._path(prefix.rstrip("/")) if prefix else Path(self.root)
        start = base if base.is_dir() else base.parent
        if not start.exists():
            return
        for dirpath, _dirs, files in sorted(os.walk(start)):
            for name in sorted(files):
                if name.startswith(".tmp-"):
                    continue
                full = Path(dirpath, name)
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield ObjectInfo(key, full.stat().st_size)

    def delete(self, key: str) -> None:
        with _local_errors("deleting", self._path(key), self.root):
            self._path(key).unlink(missing_ok=True)

    def check(self) -> None:
        """Fail fast, before any work: the lake folder can be created and written (and is left as it was)."""
        created = [p for p in (Path(self.root), *Path(self.root).parents) if not p.exists()]
        probe = f".probe-{uuid.uuid4().hex}"
        try:
            self.put(probe, b"")
            self.delete(probe)
        finally:
            for folder in created:  # deepest first: a failed login must not leave an empty lake behind
                with contextlib.suppress(OSError):
                    folder.rmdir()

    def uri(self, key: str = "") -> str:
        return str(self._path(key)) if key else self.root


def guard_path(folder: Path) -> Path:
    """The flock file guarding one lake folder's conditional writes (in the temp folder, outside the lake)."""
    name = hashlib.sha256(str(folder).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir(), f"multiverse-etl-guard-{name}")


def _content_version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version_of(path: Path) -> Optional[str]:
    try:
        return _content_version(path.read_bytes())
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _local_errors(action: str, path: Path, root: str, expected: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """An OSError on the lake folder as one StorageError naming the path and what to check.

    `expected` errors (a key that exists, or does not) pass through: the caller handles them."""
    try:
        yield
    except expected:
        raise
    except OSError as exc:
        shown = path.parent if path.name.startswith(".probe-") else path  # the start-up check's probe: name the folder
        raise StorageError(
            f"lake root {root} cannot be created or written ({action} {shown}: {exc.strerror}): "
            "check that lake.root / --lake-root names a folder this user can create and write"
        ) from exc


# How to open a lake root that is not a folder, by its start. s3_storage adds "s3://" (the package's __init__
# imports it): it imports this module, never the other way round, so the two do not import each other.
OPENERS: dict[str, Callable[[str, S3Config], Storage]] = {}


def open_storage(root: str, s3: Optional[S3Config] = None) -> Storage:
    """The storage for a lake root: S3 for s3://, a folder otherwise."""
    for start, opener in OPENERS.items():
        if root.startswith(start):
            return opener(root, s3 or S3Config())
    return LocalStorage(root)


def open_lake(root: str, s3: Optional[S3Config] = None) -> Storage:
    """open_storage, then the start-up check: a lake that cannot be written fails now, in one clear line."""
    storage = open_storage(root, s3)
    storage.check()
    return storage


def spark_path(root: str, key: str = "", scheme: str = "s3a") -> str:
    """The path Spark uses for a lake key (s3:// becomes s3a:// locally; EMRFS/Glue keep s3://)."""
    base = root.rstrip("/")
    if base.startswith("s3://") and scheme != "s3":
        base = f"{scheme}://" + base[len("s3://") :]
    return f"{base}/{key}" if key else base
