"""Pagination against the sample API (tokens, caps, restarts, loop guards) and the landing line format."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from multiverse_etl.extract.credentials import Credentials
from multiverse_etl.extract.errors import DeadPaginationToken, PaginationLoop
from multiverse_etl.extract.http import ApiClient, ClientSettings
from multiverse_etl.extract.lines import page_line
from multiverse_etl.extract.paginate import Page, PageSize, TokenPaginator, paginate, utc_now_iso
from multiverse_etl.extract.redaction import Secret
from multiverse_etl.landing import record_fingerprint
from sample_api.dump import ground_truth
from sample_api.server import run_in_thread
from sample_api.settings import ServerSettings
from support.extract import PASSWORD

CREDS = Credentials("multiverse", Secret(PASSWORD), "test")


def client_for(url: str, **api) -> ApiClient:
    values = dict(url=url, concurrency=4, backoff_base_s=0.01, backoff_max_s=0.1, max_attempts=8)
    values.update(api)
    return ApiClient(ClientSettings(**values), CREDS)


async def walk(url: str, path: str, size: PageSize, **kwargs) -> list[Page]:
    async with client_for(url) as client:
        return [page async for page in paginate(client, entity="e", path=path, page_size=size, **kwargs)]


@pytest.fixture(scope="module")
def api():
    server = run_in_thread(ServerSettings(scale=120, seed=5))
    yield server
    server.stop()


def test_a_walk_returns_every_row_once_with_a_constant_page_size(api):
    pages = asyncio.run(walk(api.url, "/apprenticeships", PageSize(25)))
    rows = [row for page in pages for row in page.data]
    assert rows == ground_truth(120, 5, 0)["apprenticeships"]
    assert [p.page_index for p in pages] == list(range(5))
    assert all(p.params == {"page_size": 25} for p in pages)  # no token in what gets landed
    assert pages[-1].doc["pagination"]["next_token"] is None


def test_a_page_size_cap_is_learnt_from_the_first_page_and_kept():
    server = run_in_thread(ServerSettings(scale=60, seed=5, max_page_size=7))
    try:
        size = PageSize(50)
        pages = asyncio.run(walk(server.url, "/apprenticeships", size))
        again = asyncio.run(walk(server.url, "/programmes", size))
    finally:
        server.stop()
    assert [len(p.data) for p in pages] == [7] * 8 + [4]
    assert pages[0].params == {"page_size": 50} and pages[1].params == {"page_size": 7}
    assert size.value == 7 and again[0].params == {"page_size": 7}
    assert sum(len(p.data) for p in again) == 43


def test_a_dead_token_after_a_server_restart_restarts_the_list_from_page_one():
    truth = ground_truth(90, 3, 0)["apprenticeships"]
    settings = ServerSettings(scale=90, seed=3)
    server = run_in_thread(settings)

    async def main():
        nonlocal server
        seen: list[Page] = []
        async with client_for(server.url) as client:
            async for page in paginate(client, entity="a", path="/apprenticeships", page_size=PageSize(20)):
                seen.append(page)
                if len(seen) == 2:  # restart the server mid-list: every token it made is now foreign
                    port = server.port
                    server.stop()
                    server = run_in_thread(settings, port=port)
        return seen

    try:
        seen = asyncio.run(main())
    finally:
        server.stop()
    indexes = [p.page_index for p in seen]
    assert indexes == [0, 1, 0, 1, 2, 3, 4]
    restarted = seen[2:]
    assert [row for page in restarted for row in page.data] == truth


def test_restarts_are_bounded():
    settings = ServerSettings(scale=90, seed=3)
    server = run_in_thread(settings)

    async def main():
        nonlocal server
        async with client_for(server.url) as client:
            async for page in paginate(
                client, entity="a", path="/apprenticeships", page_size=PageSize(20), max_restarts=1
            ):
                if page.page_index == 1:
                    port = server.port
                    server.stop()
                    server = run_in_thread(settings, port=port)

    try:
        with pytest.raises(DeadPaginationToken, match="gave up after restarting the list 1 times"):
            asyncio.run(main())
    finally:
        server.stop()


def test_page_size_zero_trips_the_loop_guard(api):
    with pytest.raises(PaginationLoop, match="pages for 0 rows"):
        asyncio.run(walk(api.url, "/programmes", PageSize(0)))


def test_the_paginator_refuses_a_token_seen_before():
    paginator = TokenPaginator()
    paginator.update_state({"next_token": "a"}, 5)
    assert paginator.update_request({"page_size": 5}) == {"page_size": 5, "pagination_token": "a"}
    paginator.update_state({"next_token": "b"}, 5)
    with pytest.raises(PaginationLoop, match="same pagination token twice"):
        paginator.update_state({"next_token": "a"}, 5)
    last = TokenPaginator()
    last.update_state({"next_token": None, "previous_token": "x"}, 3)
    assert not last.has_next_page and last.update_request({"page_size": 5}) == {"page_size": 5}
    with pytest.raises(PaginationLoop, match="not a string"):
        TokenPaginator().update_state({"next_token": 17}, 1)


def _page(body: bytes, index: int = 0) -> Page:
    return Page(
        "projects",
        "/apprenticeships/17/projects",
        {"page_size": 100},
        index,
        body,
        orjson.loads(body),
        "2026-11-27T03:34:00.123456Z",
    )


def test_a_landing_line_splices_the_served_body_untouched():
    body = (
        b'{"data":[{"id":1,"title":"caf\\u00e9 \\"q\\"\\n","n":1.50}],"pagination":{"next_token":null,"page_size":100}}'
    )
    line = page_line(_page(body), "20261127T033400Z-1a2b3c", {"apprenticeship_id": 17})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert line.endswith(body[1:] + b"\n")  # the bytes as served: escapes and 1.50 kept
    doc = orjson.loads(line)
    assert list(doc) == [
        "entity",
        "run_id",
        "extracted_at",
        "page_index",
        "request",
        "parent",
        "fingerprints",
        "data",
        "pagination",
    ]
    assert doc["request"] == {"path": "/apprenticeships/17/projects", "params": {"page_size": 100}}
    # one fingerprint per record, of the record as served under its parent
    assert doc["fingerprints"] == [record_fingerprint(orjson.loads(body)["data"][0], 17)]
    assert doc["parent"] == {"apprenticeship_id": 17} and doc["data"][0]["title"] == 'café "q"\n'


def test_a_pretty_printed_or_unexpected_body_is_re_serialised():
    pretty = b'{\n  "data": [{"id": 2}],\n  "pagination": {"next_token": null},\n  "extra": 1\n}'
    line = page_line(_page(pretty, 3), "20261127T033400Z-1a2b3c", None)
    assert line.count(b"\n") == 1
    doc = orjson.loads(line)
    assert doc["data"] == [{"id": 2}] and doc["pagination"] == {"next_token": None}
    assert "extra" not in doc and doc["parent"] is None and doc["page_index"] == 3


def test_extracted_at_is_utc_with_microseconds():
    stamp = utc_now_iso()
    assert len(stamp) == 27 and stamp.endswith("Z") and stamp[10] == "T" and stamp[19] == "."
