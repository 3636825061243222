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

from ..config import ApiConfig
from .http.session import HEADERS
from .http.wire import Pool, TooLarge, WireError
from .url import encoded, path_of, without_userinfo

log = logging.getLogger(__name__)


async def server_now(api: ApiConfig) -> Optional[dt.datetime]:
    """The server's time (aware UTC) from its Date header, or None when it cannot be had."""
    base = encoded(api.url.rstrip("/"))
    url = without_userinfo(base)  # for the log: never a user:password@ part
    pool = Pool(
        base,
        size=1,
        connect_timeout_s=api.connect_timeout_s,
        read_timeout_s=api.read_timeout_s,
        max_body_bytes=64 * 1024,  # a HEAD has no body; this bounds a server that sends one anyway
        verify_tls=api.verify_tls,
        headers=HEADERS,
    )
    try:
        reply = await pool.request("HEAD", path_of(base).rstrip("/") + "/login")
        header = reply.headers.get("date")
        when = email.utils.parsedate_to_datetime(header) if header else None
    except (WireError, TooLarge, asyncio.TimeoutError, ValueError, TypeError) as exc:
        log.debug("no Date from %s: %s", url, type(exc).__name__)
        return None
    finally:
        await pool.close()
    if when is None or when.tzinfo is None:
        return None
    return when.astimezone(dt.timezone.utc)
