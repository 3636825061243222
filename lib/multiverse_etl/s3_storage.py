"""The lake on S3 (or any S3-compatible endpoint), through boto3: `storage.Storage` over an S3 prefix.

Failures become one-line `StorageError`s that say what to check (`s3_error`); `s3_client` is the one
client factory, shared by the storage and its start-up check.
"""

from __future__ import annotations

import io
import uuid
from typing import Iterator, Optional

from .config import S3Config
from .storage import OPENERS, ObjectInfo, ObjectNotFound, StorageError, Versioned

MULTIPART_THRESHOLD = 16 * 1024 * 1024
# What S3 answers when a condition (If-Match, If-None-Match) fails, or the object to match is gone.
PRECONDITION_CODES = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
GONE_CODES = ("NoSuchKey", "404", "NotFound")


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
            self.client.upload_fileobj(
                io.BytesIO(data), self.bucket, self._key(key), ExtraArgs=self._extra_args(), Config=config
            )
        except Exception as exc:  # boto3 raises many kinds; name the object
            raise s3_error("writing", self.uri(key), exc, self.s3) from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*", **self._extra_args()
            )
        except (ClientError, BotoCoreError) as exc:
            if _error_code(exc) in PRECONDITION_CODES:
                return False
            raise s3_error("writing", self.uri(key), exc, self.s3) from exc
        return True

    def put_if_version(self, key: str, data: bytes, version: str) -> Optional[str]:
        """Overwrite only while the object's ETag is `version` (If-Match); its new ETag, or None when it changed."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, IfMatch=version, **self._extra_args()
            )
        except (ClientError, BotoCoreError) as exc:
            if _error_code(exc) in PRECONDITION_CODES + GONE_CODES:
                return None
            raise s3_error("writing", self.uri(key), exc, self.s3) from exc
        return str(answer["ETag"])

    def delete_if_version(self, key: str, version: str) -> bool:
        """Delete only while the object's ETag is `version` (If-Match); False when it changed or is gone."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key), IfMatch=version)
        except (ClientError, BotoCoreError) as exc:
            if _error_code(exc) in PRECONDITION_CODES + GONE_CODES:
                return False
            raise s3_error("deleting", self.uri(key), exc, self.s3) from exc
        return True

    def get_versioned(self, key: str) -> Versioned:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return Versioned(answer["Body"].read(), str(answer["ETag"]), answer["LastModified"])
        except (ClientError, BotoCoreError) as exc:
            if _error_code(exc) in GONE_CODES:
                raise ObjectNotFound(f"{self.uri(key)} does not exist") from None
            raise s3_error("reading", self.uri(key), exc, self.s3) from exc

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                raise ObjectNotFound(f"{self.uri(key)} does not exist") from None
            raise s3_error("reading", self.uri(key), exc, self.s3) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            if _error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise s3_error("checking", self.uri(key), exc, self.s3) from exc
        return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"][strip:], item["Size"])
        except (ClientError, BotoCoreError) as exc:
            raise s3_error("listing", self.uri(prefix), exc, self.s3) from exc

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise s3_error("deleting", self.uri(key), exc, self.s3) from exc

    def check(self) -> None:
        """Fail fast, before any work: a probe object can be written and deleted (the bucket exists, access works).

        A client with one retry and short timeouts, so an unreachable endpoint is named in seconds, not minutes."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = s3_client(self.s3, quick=True)
        probe = self._key(f".probe-{uuid.uuid4().hex}")
        try:
            client.put_object(Bucket=self.bucket, Key=probe, Body=b"", **self._extra_args())
            client.delete_object(Bucket=self.bucket, Key=probe)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error("writing", self.root, exc, self.s3) from exc

    def uri(self, key: str = "") -> str:
        return f"{self.root}/{key}" if key else self.root


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


CREDENTIALS_HINT = (
    "s3.access_key_id / s3.secret_access_key, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
    "AWS_PROFILE, or the instance role"
)


def s3_error(action: str, uri: str, exc: BaseException, s3: S3Config) -> StorageError:
    """A boto3 failure as one line saying what went wrong and what to check (never a secret: only codes)."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    bucket = uri.removeprefix("s3://").split("/", 1)[0]
    endpoint = s3.endpoint_url or f"AWS S3 ({s3.region})"
    code = _error_code(exc)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return StorageError(f"no AWS credentials found for {uri}: set {CREDENTIALS_HINT}")
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError, ReadTimeoutError)):
        return StorageError(
            f"cannot reach the S3 endpoint {endpoint} ({action} {uri}): check s3.endpoint_url, "
            "the network, and that the endpoint is running"
        )
    if code == "NoSuchBucket":
        return StorageError(
            f"bucket '{bucket}' does not exist at {endpoint} ({action} {uri}): "
            "create it, or fix lake.root / --lake-root"
        )
    if code in (
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "AuthorizationHeaderMalformed",
    ):
        return StorageError(f"S3 refused the credentials ({code}) {action} {uri}: check {CREDENTIALS_HINT}")
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        return StorageError(
            f"S3 denied access ({code}) {action} {uri}: check the credentials ({CREDENTIALS_HINT}) "
            f"and that they may list, read, write and delete under {uri}"
        )
    detail = code or type(exc).__name__
    return StorageError(f"{action} {uri} failed ({detail}): {exc}")


def s3_client(s3: S3Config, quick: bool = False):
    """The one boto3 S3 client factory (checksums 'when_required' so non-AWS endpoints work).

    `quick`: one retry and short timeouts, for the start-up check that names a bad endpoint in seconds."""
    import boto3
    from botocore.config import Config as BotoConfig

    kwargs = {}
    if s3.access_key_id and s3.secret_access_key:
        kwargs = {"aws_access_key_id": s3.access_key_id, "aws_secret_access_key": s3.secret_access_key}
    config = BotoConfig(
        region_name=s3.region,
        retries={"max_attempts": 2, "mode": "standard"}
        if quick
        else {"max_attempts": s3.max_attempts, "mode": "adaptive"},
        connect_timeout=5 if quick else 60,
        read_timeout=10 if quick else 60,
        s3={"addressing_style": "path" if s3.path_style_access else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=32,
    )
    return boto3.client("s3", endpoint_url=s3.endpoint_url, config=config, **kwargs)


OPENERS["s3://"] = S3Storage  # storage.open_storage opens s3:// roots with this (boto3 only imported on use)
