"""What the HTTP client needs from the configuration, read once, and the session factory built from it."""

from __future__ import annotations

import dataclasses
import logging
from typing import Optional

import aiohttp

from ... import __version__
from ...config import ApiConfig

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
    max_response_bytes: int = 64 * 1024 * 1024  # of a body after decompression (bodies.read_bounded)

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


def open_session(settings: ClientSettings, display_url: str) -> aiohttp.ClientSession:
    """Timeouts per socket operation (a long page is fine, a silent server is not); no silent re-sends."""
    if not settings.verify_tls:
        log.warning(
            "TLS certificate verification is OFF for %s (api.verify_tls=false): "
            "anyone on the path can read the API password",
            display_url,
        )
    connector = aiohttp.TCPConnector(
        limit=settings.concurrency, limit_per_host=0, ttl_dns_cache=300, ssl=settings.verify_tls
    )
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout_s, sock_read=settings.read_timeout_s
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        raise_for_status=False,
        headers={"User-Agent": f"multiverse-etl/{__version__}", "Accept": "application/json"},
    )
    # aiohttp quietly re-sends once when a reused connection drops; the client retries (and counts) itself.
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session
