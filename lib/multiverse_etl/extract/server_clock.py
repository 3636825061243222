"""The API server's clock, from the `Date` header of one HEAD request (best effort, right after login).

The watermark must never pass the extraction's start as the *server* sees it: its `modified_date`s are written
by its clock, and a record dated ahead of it (a skewed source, a bad row) must not make incremental runs skip
what changes meanwhile. A separate request keeps this out of the API client; any failure means "unknown".
It is sent after a successful login, so a refused login or an untrusted certificate fails as before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
from typing import Optional

import aiohttp
from yarl import URL

from ..config import ApiConfig

log = logging.getLogger(__name__)


async def server_now(api: ApiConfig) -> Optional[dt.datetime]:
    """The server's time (aware UTC) from its Date header, or None when it cannot be had."""
    url = URL(api.url.rstrip("/")).with_user(None)  # never a user:password@ part
    timeout = aiohttp.ClientTimeout(total=api.connect_timeout_s + api.read_timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.head(url / "login", ssl=api.verify_tls, allow_redirects=False) as resp:
                header = resp.headers.get("Date")
        when = email.utils.parsedate_to_datetime(header) if header else None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, TypeError) as exc:
        log.debug("no Date from %s: %s", url, exc)
        return None
    if when is None or when.tzinfo is None:
        return None
    return when.astimezone(dt.timezone.utc)
