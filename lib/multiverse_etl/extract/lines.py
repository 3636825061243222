"""One landing line per API page, in the format `multiverse_etl.landing` documents.

The served body is spliced in as bytes when it is compact JSON holding exactly `data` and
`pagination` (the normal case: zero re-encoding, the values exactly as served); otherwise
(pretty-printed, extra keys) `data` and `pagination` are re-serialised with orjson, or with
`jsonsafe.dumps` when orjson cannot write them (integers past 64 bits, nesting past 255 levels, lone
surrogates): either keeps every value exactly but may change escaping and spacing.
"""

from __future__ import annotations

from typing import Any, Optional

import orjson

from .. import jsonsafe
from ..landing import landing_line, record_fingerprints
from .paginate import Page

_SPLICE_KEYS = frozenset(("data", "pagination"))


def page_line(page: Page, run_id: str, parent: Optional[dict[str, Any]]) -> bytes:
    """The gzip-ready JSON line (with its newline) for one page."""
    return landed_page(page, run_id, parent)[0]


def landed_page(page: Page, run_id: str, parent: Optional[dict[str, Any]]) -> tuple[bytes, list[int]]:
    """`page_line` and the fingerprints it holds (with the parent's id, as `record_fingerprints` takes them): the
    part writer's digest takes them as they are instead of reading them back from the line."""
    parent_id = None if parent is None else parent.get("apprenticeship_id")
    fingerprints = record_fingerprints(page.doc["data"], parent_id)
    line = landing_line(
        page.entity,
        run_id,
        page.extracted_at,
        page.page_index,
        page.path,
        page.params,
        parent,
        _payload(page),
        fingerprints,
    )
    return line, fingerprints


def _payload(page: Page) -> bytes:
    body = page.body.strip()
    if (
        body[:1] == b"{"
        and body[-1:] == b"}"
        and b"\n" not in body
        and b"\r" not in body
        and len(page.doc) == 2
        and page.doc.keys() == _SPLICE_KEYS
    ):
        return body
    payload = {"data": page.doc["data"], "pagination": page.doc["pagination"]}
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:  # huge numbers, deep nesting, lone surrogates: written back exactly
        return jsonsafe.dumps(payload)
