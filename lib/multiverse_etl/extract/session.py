"""The session factory: one aiohttp session per run, its keep-alive pool sized to the concurrency ceiling."""

from __future__ import annotations

import logging

import aiohttp

from .. import __version__
from ..config import ApiConfig

log = logging.getLogger(__name__)


def open_session(api: ApiConfig, display_url: str) -> aiohttp.ClientSession:
    """Timeouts per socket operation (a long page is fine, a silent server is not); no silent re-sends."""
    if not api.verify_tls:
        log.warning(
            "TLS certificate verification is OFF for %s (api.verify_tls=false): "
            "anyone on the path can read the API password",
            display_url,
        )
    connector = aiohttp.TCPConnector(limit=api.concurrency, limit_per_host=0, ttl_dns_cache=300, ssl=api.verify_tls)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=api.connect_timeout_s, sock_read=api.read_timeout_s)
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
