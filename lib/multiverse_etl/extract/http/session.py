"""What the HTTP client needs from the configuration, read once, and the connection pool built from it."""

from __future__ import annotations

import dataclasses
import logging
from typing import Optional

from ... import __version__
from ...config import ApiConfig
from .wire import Pool

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """The client's few settings (from `api.*`); built once, so no module reads the whole Config piecemeal."""

    url: str
    concurrency: int = 64  # adaptive: the ceiling; fixed: always this many in flight
    adaptive: bool = True
    max_requests_per_second: Optional[float] = None  # a ceiling, never a target
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_attempts: int = 8
    backoff_base_s: float = 0.2
    backoff_max_s: float = 30.0
    retry_budget: int = 100_000
    verify_tls: bool = True
    max_response_bytes: int = 64 * 1024 * 1024  # of a body after decompression (wire.py)

    @classmethod
    def from_config(cls, api: ApiConfig) -> ClientSettings:
        return cls(
            url=api.url,
            concurrency=api.concurrency,
            adaptive=api.concurrency_mode == "adaptive",
            max_requests_per_second=api.max_requests_per_second,
            connect_timeout_s=api.connect_timeout_s,
            read_timeout_s=api.read_timeout_s,
            max_attempts=api.max_attempts,
            backoff_base_s=api.backoff_base_s,
            backoff_max_s=api.backoff_max_s,
            retry_budget=api.retry_budget,
            verify_tls=api.verify_tls,
            max_response_bytes=api.max_response_bytes,
        )


# What every request says of itself; gzip and deflate answers are inflated by wire.py, bounded like any body.
HEADERS = {
    "User-Agent": f"multiverse-etl/{__version__}",
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate",
}


def open_pool(settings: ClientSettings, url: str, display_url: str) -> Pool:
    """Connections to `url` (the encoded base URL), at most `api.concurrency`; timeouts per socket operation (a
    long page is fine, a silent server is not); no silent re-sends. `display_url`: the URL without secrets."""
    if not settings.verify_tls:
        log.warning(
            "TLS certificate verification is OFF for %s (api.verify_tls=false): "
            "anyone on the path can read the API password",
            display_url,
        )
    return Pool(
        url,
        size=settings.concurrency,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        max_body_bytes=settings.max_response_bytes,
        verify_tls=settings.verify_tls,
        headers=HEADERS,
    )
