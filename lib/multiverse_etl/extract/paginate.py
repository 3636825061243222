"""Walking a list page by page (dlt rest_client style: a paginator object drives an async generator).

The API paginates by opaque tokens: the answer's `pagination.next_token` goes back as the
`pagination_token` query parameter, until it is null. The page size stays constant for a
whole walk (the original's token arithmetic breaks otherwise); if the API caps it, the
served size is used from the second page on and for every later walk. A dead token
(server restarted) restarts the walk from page one, a bounded number of times: consumers see
`page_index == 0` again and drop what they took from that walk.
"""

from __future__ import annotations

import logging
import time
from typing import Any, AsyncIterator, Callable, Mapping, NamedTuple, Optional, Protocol

from .errors import DeadPaginationToken, PaginationLoop
from .http import ApiClient

log = logging.getLogger(__name__)


class Paginator(Protocol):
    has_next_page: bool

    def update_state(self, pagination: Mapping[str, Any], rows: int) -> None: ...
    def update_request(self, params: dict[str, Any]) -> dict[str, Any]: ...


class TokenPaginator:
    """`next_token` in the answer becomes `pagination_token` in the next request; loop guarded."""

    __slots__ = ("token_field", "param", "has_next_page", "next_token", "pages", "rows", "_seen")

    def __init__(self, token_field: str = "next_token", param: str = "pagination_token") -> None:
        self.token_field = token_field
        self.param = param
        self.has_next_page = True
        self.next_token: Optional[str] = None
        self.pages = 0
        self.rows = 0
        self._seen: Optional[set[str]] = None

    def update_state(self, pagination: Mapping[str, Any], rows: int) -> None:
        """Take the next token; raise PaginationLoop on a repeated token or more pages than rows."""
        self.pages += 1
        self.rows += rows
        token = pagination.get(self.token_field)
        if token is None or token == "":
            self.has_next_page = False
            self.next_token = None
            return
        if not isinstance(token, str):
            raise PaginationLoop(f"pagination.{self.token_field} is not a string: {type(token).__name__}")
        if self.pages > self.rows + 1:
            raise PaginationLoop(
                f"{self.pages} pages for {self.rows} rows and still a next token (page_size 0 or a broken API?)"
            )
        seen = self._seen if self._seen is not None else set()
        if token in seen:
            raise PaginationLoop(f"the API handed out the same pagination token twice (after {self.pages} pages)")
        seen.add(token)
        self._seen = seen
        self.next_token = token

    def update_request(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, self.param: self.next_token} if self.next_token else params


class PageSize:
    """The page size of one endpoint, shared by all its walks; lowered once if the API caps it."""

    __slots__ = ("value", "requested", "endpoint")

    def __init__(self, value: int, endpoint: str = "") -> None:
        self.value = value
        self.requested = value
        self.endpoint = endpoint

    def observe(self, served: Any) -> None:
        if type(served) is int and 0 < served < self.value:
            log.info(
                "%s: the API caps page_size at %d (asked %d): using %d from now on",
                self.endpoint or "list",
                served,
                self.value,
                served,
            )
            self.value = served


class Page(NamedTuple):
    """One page as served, with what is needed to land it (a tuple: one is made per request)."""

    entity: str
    path: str
    params: dict[str, Any]  # what was sent, without the pagination token
    page_index: int
    body: bytes
    doc: dict[str, Any]
    extracted_at: str

    @property
    def data(self) -> list[Any]:
        return self.doc["data"]


_second_cache: list = [None, ""]


def utc_now_iso() -> str:
    """2026-11-27T03:34:00.123456Z (the whole-second part formatted once per second: this runs per page)."""
    now = time.time()
    second = int(now)
    if _second_cache[0] != second:
        _second_cache[0], _second_cache[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second_cache[1]}.{int((now - second) * 1_000_000):06d}Z"


async def paginate(
    client: ApiClient,
    *,
    entity: str,
    path: str,
    page_size: PageSize,
    params: Optional[Mapping[str, Any]] = None,
    max_restarts: int = 5,
    make_paginator: Callable[[], Paginator] = TokenPaginator,
) -> AsyncIterator[Page]:
    """Every page of one list, first to last; a dead token restarts from page one (page_index 0 again)."""
    restarts = 0
    while True:
        paginator = make_paginator()
        size = page_size.value
        base = {**(params or {}), "page_size": size}
        request = base
        index = 0
        try:
            while paginator.has_next_page:
                response = await client.get_page(path, request, entity=entity)
                pagination = response.doc["pagination"]
                paginator.update_state(pagination, len(response.doc["data"]))
                sent = base
                if index == 0:
                    page_size.observe(pagination.get("page_size"))
                    if page_size.value < size:
                        size = page_size.value
                        base = {**base, "page_size": size}
                yield Page(entity, path, sent, index, response.body, response.doc, utc_now_iso())
                index += 1
                request = paginator.update_request(base)
            return
        except DeadPaginationToken as exc:
            restarts += 1
            if restarts > max_restarts:
                raise DeadPaginationToken(
                    f"{exc}; gave up after restarting the list {max_restarts} times", status=500, path=path
                ) from None
            log.warning(
                "%s: pagination token dead after %d pages; restarting the list from page one (%d/%d)",
                path,
                index,
                restarts,
                max_restarts,
            )
