"""Minimal reference client for tests and benchmarks of the replica (not the ETL's extractor).

It walks a list the way the contract says a careful client must: constant page size,
``next_token`` until null, a loop guard for ``page_size=0``, and (optionally) retries
of faulted requests, logging in again on 401.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import requests

USERNAME = "multiverse"
PASSWORD = "mult1v3r53"
RETRYABLE = (429, 500)


def login(session: requests.Session, url: str) -> str:
    """Log in with the demo credentials and set the bearer header on ``session``."""
    answer = session.post(f"{url}/login", data={"username": USERNAME, "password": PASSWORD}, timeout=10)
    answer.raise_for_status()
    token = answer.json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return token


def get_page(
    session: requests.Session, url: str, path: str, params: dict[str, Any], retries: int = 0
) -> dict[str, Any]:
    """One page; with ``retries``, faults (429/500/dropped connection/401) are retried."""
    for attempt in range(retries + 1):
        try:
            answer = session.get(f"{url}{path}", params=params, timeout=10)
        except requests.ConnectionError:
            if attempt == retries:
                raise
            continue
        if attempt < retries:
            if answer.status_code == 401:
                login(session, url)
                continue
            if answer.status_code in RETRYABLE:
                time.sleep(min(float(answer.headers.get("Retry-After", 0)), 2.0) * 0.05)
                continue
        answer.raise_for_status()
        return answer.json()
    raise AssertionError("unreachable")


def walk(
    session: requests.Session,
    url: str,
    path: str,
    page_size: Optional[int] = None,
    retries: int = 0,
    max_pages: int = 100_000,
    **params: Any,
) -> list[dict[str, Any]]:
    """All rows of one list, following ``next_token`` with a constant page size."""
    query = dict(params)
    if page_size is not None:
        query["page_size"] = page_size
    rows: list[dict[str, Any]] = []
    for _ in range(max_pages):
        page = get_page(session, url, path, query, retries)
        rows.extend(page["data"])
        token = page["pagination"]["next_token"]
        if token is None:
            return rows
        query["pagination_token"] = token
    raise AssertionError(f"{path}: more than {max_pages} pages (page_size=0?)")
