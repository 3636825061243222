"""One small storage interface over the lake root: a local folder or an S3 prefix.

The driver writes landing parts, manifests, state and locks through it; Spark reads the same
objects through `spark_path`. Keys are always '/'-separated and relative to the lake root.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Protocol

from .config import S3Config

MULTIPART_THRESHOLD = 16 * 1024 * 1024


class StorageError(RuntimeError):
    """A lake read or write failed; the message names the object."""


class ObjectNotFound(StorageError, KeyError):
    """The key does not exist in the lake."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


class Storage(Protocol):
    root: str

    def put(self, key: str, data: bytes) -> None: ...
    def put_if_absent(self, key: str, data: bytes) -> bool: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...
    def delete(self, key: str) -> None: ...
    def uri(self, key: str = "") -> str: ...


class LocalStorage:
    """A folder as the lake; writes are atomic (temp file + rename) so readers never see half a file."""

    def __init__(self, root: str) -> None:
        self.root = str(Path(root.removeprefix("file://")).resolve())

    def _path(self, key: str) -> Path:
        return Path(self.root, *key.split("/"))

    def _staged(self, key: str, data: bytes) -> tuple[Path, str]:
        """`data` written to a temp file beside the key's path (its final name comes atomically)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path, tmp

    def put(self, key: str, data: bytes) -> None:
        path, tmp = self._staged(key, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create-if-absent with the content already in place (a hard link never exposes a half file)."""
        path, tmp = self._staged(key, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True

    def get(self, key: str) -> bytes:
        try:
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
        self._path(key).unlink(missing_ok=True)

    def uri(self, key: str = "") -> str:
        return str(self._path(key)) if key else self.root


class S3Storage:
    """An S3 prefix as the lake, through boto3; every write carries the configured encryption."""

    def __init__(self, root: str, s3: S3Config, client=None) -> None:
        bucket, _, prefix = root.removeprefix("s3://").partition("/")
        if not bucket:
            raise StorageError(f"lake root {root!r} names no bucket")
        self.root = root.rstrip("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.s3 = s3
        self.client = client or s3_client(s3)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _extra_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        if self.s3.sse:
            args["ServerSideEncryption"] = self.s3.sse
            if self.s3.sse == "aws:kms" and self.s3.sse_kms_key_id:
                args["SSEKMSKeyId"] = self.s3.sse_kms_key_id
        return args

    def put(self, key: str, data: bytes) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD)
        try:
            self.client.upload_fileobj(io.BytesIO(data), self.bucket, self._key(key), ExtraArgs=self._extra_args(), Config=config)
        except Exception as exc:  # boto3 raises many kinds; name the object
            raise StorageError(f"writing {self.uri(key)} failed: {exc}") from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*", **self._extra_args())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise StorageError(f"writing {self.uri(key)} failed: {exc}") from exc
        return True

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ObjectNotFound(f"{self.uri(key)} does not exist") from None
            raise StorageError(f"reading {self.uri(key)} failed: {exc}") from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise StorageError(f"checking {self.uri(key)} failed: {exc}") from exc
        return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"][strip:], item["Size"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def uri(self, key: str = "") -> str:
        return f"{self.root}/{key}" if key else self.root


def s3_client(s3: S3Config):
    """The one boto3 S3 client factory (checksums 'when_required' so non-AWS endpoints work)."""
    import boto3
    from botocore.config import Config as BotoConfig

    kwargs = {}
    if s3.access_key_id and s3.secret_access_key:
        kwargs = {"aws_access_key_id": s3.access_key_id, "aws_secret_access_key": s3.secret_access_key}
    config = BotoConfig(
        region_name=s3.region,
        retries={"max_attempts": 10, "mode": "adaptive"},
        s3={"addressing_style": "path" if s3.path_style_access else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=32,
    )
    return boto3.client("s3", endpoint_url=s3.endpoint_url, config=config, **kwargs)


def open_storage(root: str, s3: Optional[S3Config] = None) -> Storage:
    """The storage for a lake root: S3 for s3://, a folder otherwise."""
    if root.startswith("s3://"):
        return S3Storage(root, s3 or S3Config())
    return LocalStorage(root)


def spark_path(root: str, key: str = "", scheme: str = "s3a") -> str:
    """The path Spark uses for a lake key (s3:// becomes s3a:// locally; EMRFS/Glue keep s3://)."""
    base = root.rstrip("/")
    if base.startswith("s3://") and scheme != "s3":
        base = f"{scheme}://" + base[len("s3://"):]
    return f"{base}/{key}" if key else base
