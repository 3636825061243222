"""The watermark never passes the extraction's start: a record dated 20 h ahead does not make the next
incremental run skip what changed in between."""

import datetime as dt

from multiverse_etl.extract import run_extract
from multiverse_etl.extract.state import capped_watermark, extraction_start, read_watermark
from sample_api.data import format_ts
from support.extract import extract_config, landed_records, start_api, storage_for


def test_a_record_dated_20_hours_ahead_does_not_push_the_watermark_past_the_start(tmp_path):
    api = start_api(scale=30, seed=7)
    try:
        dataset = api.dataset
        now = int(dt.datetime.now(dt.timezone.utc).timestamp())
        dataset.mdates[0] = format_ts(now + 20 * 3600)  # a source row dated 20 hours ahead
        config = extract_config(str(tmp_path / "lake"), api.url)
        storage = storage_for(config)
        first = run_extract(config, storage=storage, mode="full")
        started = dt.datetime.fromisoformat(first.manifest.started_at.replace("Z", "+00:00"))
        watermark = read_watermark(storage)
        assert watermark is not None and watermark <= format_ts(int(started.timestamp()))
        assert watermark >= format_ts(now - 5)  # it still moved up to (about) the start, in the API's format

        dataset.mdates[5] = format_ts(int(dt.datetime.now(dt.timezone.utc).timestamp()) + 1)  # changed since
        dataset._filter_cache.clear()
        second = run_extract(config, storage=storage, mode="incremental")
        changed = {r["id"] for r in landed_records(storage, second.run_id)["apprenticeships"]}
        assert dataset.ids[5] in changed and dataset.ids[0] in changed  # the change is not skipped
    finally:
        api.stop()


def test_the_start_is_the_earlier_of_the_local_and_the_server_clock_and_keeps_the_apis_format():
    server = dt.datetime(2026, 1, 1, 10, 0, 0, tzinfo=dt.timezone.utc)
    assert extraction_start("2026-01-01T10:00:05.123456Z", server) == server  # the server is 5 s behind
    assert extraction_start("2026-01-01T09:59:00Z", server).minute == 59
    assert extraction_start("2026-01-01T09:59:00Z", None).minute == 59
    assert capped_watermark("2026-01-02T06:00:00", server) == "2026-01-01T10:00:00"
    assert capped_watermark("2026-01-01 06:00:00.25+00:00", server) == "2026-01-01 06:00:00.25+00:00"
    assert capped_watermark("2026-01-01 12:00:00.25", server) == "2026-01-01 10:00:00.00"
    assert capped_watermark(None, server) is None
