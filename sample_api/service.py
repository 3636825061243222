"""The replica's list logic, shared by the FastAPI routes and the ASGI fast path.

Both paths call the same functions, so they cannot drift apart. A ``TokenError``
(garbage or foreign token, negative page size, negative previous offset) becomes the
original's plain ``500 Internal Server Error``.
"""

from __future__ import annotations

from typing import Optional

import orjson

from .data import Dataset
from .poison import poison_rows
from .tokens import AccessTokens, TokenCodec, TokenError

INTERNAL_ERROR_BODY = b"Internal Server Error"


class Service:
    """What one server process serves: dataset, pagination key, login tokens, page cap."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        token_ttl: Optional[int] = None,
        max_page_size: Optional[int] = None,
        extra_fields: tuple[str, ...] = (),
        poison: bool = False,
    ) -> None:
        self.dataset = dataset
        self.poison = poison  # serve hostile records (poison.py) on each list's first page
        # Schema drift: per entity, the JSON bytes appended inside each record, e.g. b',"cohort":"extra-cohort"'.
        self.extra: dict[str, bytes] = {}
        for spec in extra_fields:
            entity, _, name = spec.partition(".")
            self.extra[entity] = (
                self.extra.get(entity, b"") + b"," + orjson.dumps(name) + b":" + orjson.dumps(f"extra-{name}")
            )
        self.codec = TokenCodec()
        self.access = AccessTokens(token_ttl)
        self.max_page_size = max_page_size or None

    # -- pagination arithmetic (the original's, quirks included)

    def _window(self, total: int, page_size: int, pagination_token: Optional[str]) -> tuple[int, int, bytes]:
        """``(start, stop, pagination JSON)`` for one page; TokenError -> 500."""
        if page_size < 0:
            raise TokenError("negative page_size")
        if self.max_page_size is not None and page_size > self.max_page_size:
            page_size = self.max_page_size
        offset = self.codec.decode(pagination_token) if pagination_token else 0
        end = offset + page_size
        next_token = self.codec.encode(end) if end < total else None
        previous_token = self.codec.encode(offset - page_size) if offset > 0 else None
        # page_size by hand: the original echoes any int, even past 64 bits (orjson can't)
        pagination = (
            b'{"next_token":'
            + orjson.dumps(next_token)
            + b',"previous_token":'
            + orjson.dumps(previous_token)
            + b',"page_size":'
            + str(page_size).encode()
            + b"}"
        )
        return offset, min(end, total), pagination

    def _page(self, rows: list[bytes], pagination: bytes, entity: str = "") -> bytes:
        extra = self.extra.get(entity)
        if extra:  # objects only: a corrupted record that is not an object is served as it is
            rows = [row[:-1] + extra + b"}" if row.endswith(b"}") and row != b"{}" else row for row in rows]
        return b'{"data":[' + b",".join(rows) + b'],"pagination":' + pagination + b"}"

    # -- endpoints

    def apprenticeships(self, modified_after: Optional[str], page_size: int, pagination_token: Optional[str]) -> bytes:
        """Body of ``GET /apprenticeships``."""
        ds = self.dataset
        positions = ds.filtered_positions(modified_after)
        start, stop, pagination = self._window(len(positions), page_size, pagination_token)
        rows = [ds.apprenticeship_row(positions[i]) for i in range(start, stop)]
        if self.poison:
            rows += poison_rows("apprenticeships", start, modified_after=modified_after)
        return self._page(rows, pagination, "apprenticeships")

    def projects(self, apprenticeship_id: int, page_size: int, pagination_token: Optional[str]) -> bytes:
        """Body of ``GET /apprenticeships/{id}/projects``: O(page) at any scale."""
        ds = self.dataset
        first, count = ds.project_range(apprenticeship_id)
        start, stop, pagination = self._window(count, page_size, pagination_token)
        rows = [ds.project_row(first + i, i) for i in range(start, stop)]
        if self.poison:
            rows += poison_rows("projects", start, apprenticeship_id=apprenticeship_id)
        return self._page(rows, pagination, "projects")

    def programmes(self, page_size: int, pagination_token: Optional[str]) -> bytes:
        """Body of ``GET /programmes``."""
        rows = self.dataset.programme_rows
        start, stop, pagination = self._window(len(rows), page_size, pagination_token)
        page = rows[start:stop]
        if self.poison:
            page = [*page, *poison_rows("programmes", start)]
        return self._page(page, pagination, "programmes")
