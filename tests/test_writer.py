"""Part writer (local folder and local S3), watermark arithmetic and state, resume take-over."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os

import orjson
import pytest

from multiverse_etl.extract.errors import ExtractError
from multiverse_etl.extract.lines import landed_page
from multiverse_etl.extract.paginate import Page
from multiverse_etl.extract.parents import ParentSet, parent_id
from multiverse_etl.extract.resume import take_over
from multiverse_etl.extract.state import (
    ExtractPlan,
    WatermarkTracker,
    advance_watermark,
    modified_after_for,
    parse_api_timestamp,
    read_run_plan,
    read_watermark,
    shift_timestamp,
    write_run_plan,
)
from multiverse_etl.extract.writer import PartWriter, part_number
from multiverse_etl.landing import Part, landing_line, part_key, run_prefix
from multiverse_etl.s3_storage import S3Storage
from multiverse_etl.storage import LocalStorage, open_storage

RUN = "20261127T033400Z-1a2b3c"


def line(entity: str, parent: int, index: int, records: int, filler: bytes = b"") -> bytes:
    """A landing line by the landing contract's `landing_line` (`filler` pads the page to a wanted size)."""
    payload = orjson.dumps(
        {
            "data": [{"id": parent * 100 + i} for i in range(records)],
            "pagination": {"next_token": None},
            "filler": filler.decode(),
        }
    )
    return landing_line(
        entity,
        RUN,
        "x",
        index,
        f"/apprenticeships/{parent}/projects",
        {"page_size": 2},
        {"apprenticeship_id": parent},
        payload,
    )


def read_part(storage, key: str) -> list[dict]:
    return [orjson.loads(line) for line in gzip.decompress(storage.get(key)).splitlines()]


async def write_groups(writer: PartWriter, groups) -> list[Part]:
    for lines, records in groups:
        await writer.add(lines, records)
    return await writer.close()


def test_parts_roll_at_the_size_and_never_split_a_group(tmp_path):
    storage = LocalStorage(str(tmp_path))
    writer = PartWriter(storage, "projects", RUN, max_bytes=2048)
    groups = [
        ([line("projects", p, i, 2, os.urandom(40).hex().encode()) for i in range(1 + p % 3)], 2 * (1 + p % 3))
        for p in range(60)
    ]
    parts = asyncio.run(write_groups(writer, groups))
    assert len(parts) > 3
    assert [p.key for p in parts] == [part_key("projects", RUN, n) for n in range(len(parts))]
    seen_parents = []
    for part in parts:
        lines = read_part(storage, part.key)
        assert part.pages == len(lines) and part.records == sum(len(line["data"]) for line in lines)
        assert part.bytes == len(storage.get(part.key))
        parents = [line["parent"]["apprenticeship_id"] for line in lines]
        # a group's pages are together, in order, in one part
        for parent in set(parents):
            indexes = [line["page_index"] for line in lines if line["parent"]["apprenticeship_id"] == parent]
            assert indexes == list(range(1 + parent % 3))
        seen_parents.extend(dict.fromkeys(parents))
    assert seen_parents == list(range(60))
    assert writer.pages == sum(1 + p % 3 for p in range(60)) and writer.records == sum(g[1] for g in groups)


def test_the_digest_takes_given_fingerprints_as_it_reads_them_from_the_lines(tmp_path):
    """The fan-out hands the writer each page's fingerprints (no second parse); the digest is the same."""
    pages = [
        (landed_page(_page(parent, records), RUN, {"apprenticeship_id": parent}), parent)
        for parent, records in ((7, 3), (8, 0), (9, 1))
    ]
    read_back = PartWriter(LocalStorage(str(tmp_path / "a")), "projects", RUN, max_bytes=1 << 20)
    given = PartWriter(LocalStorage(str(tmp_path / "b")), "projects", RUN, max_bytes=1 << 20)

    async def main():
        for (line_, prints), parent in pages:
            await read_back.add([line_], len(prints))
            await given.add([line_], len(prints), [prints], parent)

    asyncio.run(main())
    assert read_back.digest is not None and given.digest is not None
    assert given.digest.text() == read_back.digest.text() and read_back.digest.count == 5  # 4 records, 1 empty


def _page(parent: int, records: int) -> Page:
    body = orjson.dumps({"data": [{"id": parent * 100 + i} for i in range(records)], "pagination": {}})
    return Page("projects", f"/apprenticeships/{parent}/projects", {"page_size": 5}, 0, body, orjson.loads(body), "x")


def test_discard_deletes_what_this_writer_wrote_and_numbering_starts_over(tmp_path):
    storage = LocalStorage(str(tmp_path))
    writer = PartWriter(storage, "apprenticeships", RUN, max_bytes=1024)

    async def main():
        for p in range(30):
            await writer.add([line("apprenticeships", p, p, 3, os.urandom(64).hex().encode())], 3)
        assert len(writer.parts) >= 2
        await writer.discard()
        assert writer.parts == [] and writer.pages == 0
        await writer.add([line("apprenticeships", 1, 0, 3)], 3)
        return await writer.close()

    parts = asyncio.run(main())
    assert [p.key for p in parts] == [part_key("apprenticeships", RUN, 0)]
    assert [o.key for o in storage.list(run_prefix("apprenticeships", RUN))] == [parts[0].key]


def test_an_entity_with_nothing_to_land_writes_no_part(tmp_path):
    writer = PartWriter(LocalStorage(str(tmp_path)), "projects", RUN, max_bytes=4096)
    assert asyncio.run(writer.close()) == []
    assert list(LocalStorage(str(tmp_path)).list("raw/")) == []


def test_parts_on_s3_are_encrypted_and_large_parts_go_multipart(s3_config):
    storage = open_storage(s3_config.lake.root + "/writer-test", s3_config.s3)
    assert isinstance(storage, S3Storage)
    writer = PartWriter(storage, "projects", RUN, max_bytes=64 * 1024 * 1024, level=1)
    blob = base64.b64encode(os.urandom(18 * 1024 * 1024))  # ~18 MB once gzipped: random bytes do not shrink
    small = [line("projects", 1, 0, 1)]
    big = [line("projects", 2, 0, 1, blob[: len(blob) // 2]), line("projects", 2, 1, 1, blob[len(blob) // 2 :])]
    parts = asyncio.run(write_groups(writer, [(small, 1), (big, 2)]))
    assert len(parts) == 1 and parts[0].bytes > 16 * 1024 * 1024
    head = storage.client.head_object(Bucket=storage.bucket, Key=storage._key(parts[0].key))
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ETag"].strip('"').endswith("-2")  # uploaded in parts
    lines = read_part(storage, parts[0].key)
    assert [line["parent"]["apprenticeship_id"] for line in lines] == [1, 2, 2]


def test_resume_take_over_keeps_project_parts_and_deletes_list_parts(tmp_path):
    storage = LocalStorage(str(tmp_path))

    async def first_attempt():
        projects = PartWriter(storage, "projects", RUN, max_bytes=1024)
        for p in range(40):
            await projects.add([line("projects", p, i, 1, os.urandom(30).hex().encode()) for i in range(2)], 2)
        # the crash: the open part (the last parents) is never written
        apprenticeships = PartWriter(storage, "apprenticeships", RUN, max_bytes=1024)
        await apprenticeships.add([line("apprenticeships", 0, 0, 5)], 5)
        await apprenticeships.close()
        return projects.parts

    written = asyncio.run(first_attempt())
    assert 0 < len(written)
    prior = take_over(storage, RUN)
    done = sorted(p for p in range(40) if p in prior.done_parents)
    assert done == list(range(len(done))) and 0 < len(done) < 40
    assert prior.project_parts == written
    assert list(storage.list(run_prefix("apprenticeships", RUN))) == []
    resumed = PartWriter(storage, "projects", RUN, max_bytes=1024, prior_parts=prior.project_parts)
    assert resumed.first_number == len(written)
    asyncio.run(resumed.add([line("projects", 99, 0, 1)], 1))
    parts = asyncio.run(resumed.close())
    assert parts[: len(written)] == written and part_number(parts[-1].key) == len(written)


def test_an_unreadable_part_is_dropped_on_resume_so_its_parents_are_listed_again(tmp_path):
    storage = LocalStorage(str(tmp_path))
    storage.put(part_key("projects", RUN, 0), b"not gzip")
    prior = take_over(storage, RUN)
    assert prior.project_parts == [] and len(prior.done_parents) == 0
    assert not storage.exists(part_key("projects", RUN, 0))


def test_timestamps_shift_in_the_api_format():
    assert shift_timestamp("2024-03-05T10:21:33", -3600) == "2024-03-05T09:21:33"
    assert shift_timestamp("2024-03-01T00:10:00", -3600) == "2024-02-29T23:10:00"
    assert shift_timestamp("2024-03-05 10:21:33.120Z", -1) == "2024-03-05 10:21:32.120Z"
    assert modified_after_for(None, 3600) is None
    assert modified_after_for("2024-03-05T10:21:33", 0) == "2024-03-05T10:21:33"
    assert parse_api_timestamp("2024-02-30T25:61:00") is None and parse_api_timestamp("yesterday") is None
    assert parse_api_timestamp(None) is None and parse_api_timestamp("31/12/2023 14:05") is None


def test_the_watermark_ignores_broken_and_future_dates():
    tracker = WatermarkTracker()
    tracker.observe(
        [
            {"modified_date": "2024-03-05T10:21:33"},
            {"modified_date": "yesterday"},
            {"modified_date": "2024-03-06T00:00:00"},
            {"modified_date": "9999-01-01T00:00:00"},
            {"name": "no date"},
            "not a record",
            {"modified_date": "2023-13-01T00:00:00"},
        ]
    )
    assert tracker.value == "2024-03-06T00:00:00" and tracker.ignored == 5


def test_the_stored_watermark_only_moves_forward(tmp_path):
    storage = LocalStorage(str(tmp_path))
    assert read_watermark(storage) is None
    assert advance_watermark(storage, "2024-03-05T10:21:33", RUN, "now") == "2024-03-05T10:21:33"
    assert advance_watermark(storage, "2024-01-01T00:00:00", RUN, "now") == "2024-03-05T10:21:33"
    assert advance_watermark(storage, None, RUN, "now") == "2024-03-05T10:21:33"
    assert read_watermark(storage) == "2024-03-05T10:21:33"
    storage.put("_state/watermark.json", json.dumps({"modified_date": "garbage"}).encode())
    with pytest.raises(ExtractError, match="not an API timestamp"):
        read_watermark(storage)


def test_run_plans_round_trip(tmp_path):
    storage = LocalStorage(str(tmp_path))
    plan = ExtractPlan(
        RUN,
        "incremental",
        "changed",
        "http://x",
        "2026-11-27T03:34:00.000000Z",
        "2024-01-01T00:00:00",
        "2023-12-31T23:00:00",
    )
    write_run_plan(storage, plan)
    assert read_run_plan(storage, RUN) == plan
    assert read_run_plan(storage, "20261127T033400Z-000000") is None


def test_parent_ids_and_the_parent_set():
    assert parent_id({"id": 17}) == 17 and parent_id({"id": " 17 "}) == 17
    assert parent_id({"id": None}) is None and parent_id({"id": "A-17"}) is None and parent_id({}) is None
    assert parent_id({"id": True}) is None and parent_id({"id": 1.5}) is None and parent_id(["id"]) is None
    parents = ParentSet()
    assert parents.add(5) and not parents.add(5) and parents.add(10**12) and parents.add(-3)
    assert 5 in parents and 10**12 in parents and -3 in parents and 6 not in parents and 10**9 not in parents
    assert len(parents) == 3
