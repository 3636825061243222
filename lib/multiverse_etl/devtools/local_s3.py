"""A real local S3 endpoint: moto's server mode bound to 127.0.0.1, bucket created at start.

Used by the pytest session fixture and by `make local-s3` / `python -m multiverse_etl.devtools.local_s3`.
boto3 (landing files) and Spark's s3a (Delta) both talk to it over HTTP, so nothing is mocked.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

DUMMY_KEY = "testing"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalS3:
    endpoint_url: str
    bucket: str
    _server: Any

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalS3:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_local_s3(bucket: str = "multiverse-lake", port: int = 0) -> LocalS3:
    """Start moto's server on 127.0.0.1 (a free port when 0) and create `bucket`."""
    import boto3
    from botocore.config import Config
    from moto.server import ThreadedMotoServer

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, DUMMY_KEY)
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=DUMMY_KEY,
        aws_secret_access_key=DUMMY_KEY,
        config=Config(request_checksum_calculation="when_required", response_checksum_validation="when_required"),
    )
    client.create_bucket(Bucket=bucket)
    return LocalS3(endpoint_url=endpoint, bucket=bucket, _server=server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a local S3 endpoint (moto) on 127.0.0.1 until interrupted.")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--bucket", default="multiverse-lake")
    args = parser.parse_args(argv)
    s3 = start_local_s3(args.bucket, args.port)
    print(f"local S3 listening on {s3.endpoint_url} with bucket {s3.bucket}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    s3.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
