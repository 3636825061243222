"""End to end: the replica with --poison serves hostile but valid JSON among the normal records (sample_api/poison.py);
the transform loads the run, quarantines each hostile record with its reason, loads every normal record into silver,
and a second run is not blocked (the hostile versions are then known bad: counted, not written again).

Values beyond Spark's default JSON limits (nesting 1,000 levels, numbers 1,000 digits), such as a 1,500-digit number
or 1,100 levels of nesting, never fail the landing read (FAILFAST) nor leave the run pending; nor does a number beyond
the raised limit (100,000 digits): its record alone is quarantined (`unreadable_record`), the rest of its page loads.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pytest
from pyspark.sql import functions as F

from conftest import make_config
from multiverse_etl import jsonsafe
from multiverse_etl.entities import entity as spec_of
from multiverse_etl.extract import run_extract
from multiverse_etl.lake import Lake
from multiverse_etl.storage import open_storage
from multiverse_etl.transform import run_transform
from multiverse_etl.transform.clean import validate_records
from multiverse_etl.transform.read import LandingReadError, find_unreadable_part, split_refused_lines
from multiverse_etl.transform.tables import read_table
from sample_api import poison
from sample_api.dump import ground_truth
from support.extract import extract_config, start_api
from support.landed import T0, Page, Raw, apprenticeship, bronze_frame, programme, write_run

SCALE, SEED = 12, 31
POISON = {"apprenticeships": poison.APPRENTICESHIPS, "projects": poison.PROJECTS, "programmes": poison.PROGRAMMES}
# (entity, id as sent, reasons) of every hostile record: out-of-range ids and a 1,500-digit number are integers
# beyond the 64-bit range (`wrong_type`, as docs/transform.md says), deep nesting is not text (`wrong_type`), a lone
# surrogate is no Unicode text (`lone_surrogate`).
EXPECTED_QUARANTINE = {
    ("apprenticeships", str(2**64), ("wrong_type:id",)),
    ("apprenticeships", "12345678901234567890123", ("wrong_type:id",)),
    ("apprenticeships", str(2**63), ("wrong_type:id",)),
    ("apprenticeships", str(poison.POISON_PARENT), ("wrong_type:programme_id",)),
    ("apprenticeships", "900000002", ("wrong_type:name",)),
    ("apprenticeships", "900000004", ("lone_surrogate:first_name",)),
    ("projects", str(2**64), ("wrong_type:id",)),
    ("projects", "900000012", ("wrong_type:description",)),
    ("projects", "900000013", ("lone_surrogate:title",)),
    ("programmes", "900000021", ("wrong_type:duration",)),
    ("programmes", "900000022", ("lone_surrogate:name",)),
}
LONG_NAME_ID = 900000003  # a 1 MB last_name: valid, loaded whole


def _extract(root: str, server) -> str:
    config = extract_config(root, server.url, api={"page_size": 50, "concurrency": 4})
    return run_extract(config).run_id


@pytest.fixture(scope="module")
def poisoned(spark, tmp_path_factory):
    """Two extractions from the poisoned replica, each followed by a transform."""
    root = str(tmp_path_factory.mktemp("poison-lake"))
    config = make_config(root)
    server = start_api(scale=SCALE, seed=SEED, poison=True)
    try:
        first_run = _extract(root, server)
        first = run_transform(spark, config)
        second_run = _extract(root, server)
        second = run_transform(spark, config)
    finally:
        server.stop()
    return Lake.at(root), (first_run, first), (second_run, second)


def test_a_poisoned_run_is_loaded_and_reconciles(spark, poisoned):
    lake, (first_run, first), _ = poisoned
    assert first.loaded_run_ids == [first_run]
    (report,) = first.runs
    assert report.mismatches == []
    audit = read_table(spark, lake, "_audit/runs").where(F.col("run_id") == first_run)
    assert [(r.status, r.reconciled) for r in audit.collect()] == [("loaded", True)]
    truth = ground_truth(SCALE, SEED, 0)
    for counts in report.entities:  # every landed record is in silver or quarantine
        assert counts.landed_records == len(truth[counts.entity]) + len(POISON[counts.entity]), counts.entity
        assert counts.changed_records == counts.landed_records
        assert counts.valid_rows + counts.quarantined_rows == counts.changed_records


def test_each_hostile_record_is_quarantined_with_its_reason_and_its_text(spark, poisoned):
    lake, (first_run, _), _ = poisoned
    rows = read_table(spark, lake, "silver/quarantine").collect()
    assert {(r.entity, r.record_id, tuple(r.reasons)) for r in rows} == EXPECTED_QUARANTINE
    assert len(rows) == len(EXPECTED_QUARANTINE) and {r.run_id for r in rows} == {first_run}
    served = {}
    for entity, texts in POISON.items():
        for text in texts:
            value = jsonsafe.loads(text)["id"]
            served[(entity, value.text if isinstance(value, jsonsafe.RawJson) else str(value))] = text
    for row in rows:  # the record as served (Spark 3.5 re-serialises it: compare the values)
        assert jsonsafe.loads(row.raw_record) == jsonsafe.loads(served[(row.entity, row.record_id)]), row.record_id


def test_the_normal_records_and_the_valid_hostile_one_are_in_silver(spark, poisoned):
    lake, _, _ = poisoned
    truth = ground_truth(SCALE, SEED, 0)
    apprenticeships = read_table(spark, lake, "silver/apprenticeships")
    assert sorted(r.apprenticeship_id for r in apprenticeships.collect()) == sorted(
        [a["id"] for a in truth["apprenticeships"]] + [LONG_NAME_ID]
    )
    (long_name,) = apprenticeships.where(F.col("apprenticeship_id") == LONG_NAME_ID).collect()
    assert long_name.last_name == "x" * 1_000_000
    projects = read_table(spark, lake, "silver/projects").collect()
    assert sorted((r.apprenticeship_id, r.project_id) for r in projects) == sorted(
        (p["apprenticeship_id"], p["id"]) for p in truth["projects"]
    )
    programmes = read_table(spark, lake, "silver/programmes").collect()
    assert sorted(r.programme_id for r in programmes) == sorted(p["id"] for p in truth["programmes"])
    assert not any("?" in r.name for r in programmes if r.programme_id >= 900000000)


def test_a_second_run_is_not_blocked_and_counts_the_hostile_records_as_known_bad(spark, poisoned):
    lake, (first_run, _), (second_run, second) = poisoned
    assert second.loaded_run_ids == [second_run]
    (report,) = second.runs
    assert report.mismatches == []
    known_bad = {c.entity: c.known_bad_records for c in report.entities}
    assert known_bad == {"apprenticeships": 6, "projects": 3, "programmes": 2}  # the long name is unchanged
    assert all(c.changed_records == 0 for c in report.entities)
    audit = read_table(spark, lake, "_audit/runs").collect()
    assert sorted((r.run_id, r.status) for r in audit) == [(first_run, "loaded"), (second_run, "loaded")]
    assert read_table(spark, lake, "silver/quarantine").count() == len(EXPECTED_QUARANTINE)


def test_a_lone_surrogate_escape_in_a_text_field_is_a_reason_and_a_pair_or_an_escaped_backslash_is_not(spark):
    texts = {
        1: r'"An\ud800n"',  # lone high
        2: r'"x\uDC00"',  # lone low, upper case
        3: r'"\ud83d\ude00 ok"',  # a pair: one character
        4: r'"\\ud800"',  # an escaped backslash, then text
        5: r'"\\\ud800"',  # an escaped backslash, then a lone high
        6: r'"\udbff\\udc00"',  # a high, then an escaped backslash: lone
        7: r'"\u00e9"',  # an ordinary escape
    }
    records = [
        Raw(
            f'{{"id":{aid},"name":"n","programme_id":7,"modified_date":"2024-03-05T10:21:33","first_name":{text},'
            '"last_name":"b","email_address":"a@b.org","extra":"\\ud800"}'
        )
        for aid, text in texts.items()
    ]
    validated = bronze_frame(spark, "apprenticeships", records).transform(validate_records(spec_of("apprenticeships")))
    got = {r.record_index + 1: list(r.reasons) for r in validated.select("record_index", "reasons").collect()}
    lone = ["lone_surrogate:first_name"]
    assert got == {1: lone, 2: lone, 3: [], 4: [], 5: lone, 6: lone, 7: []}


# A number of more digits than `JSON_READ_LIMITS` takes (maxNumLen 100,000): Spark's JSON reader refuses its landing
# line whole; the transform splits that line on the driver and refuses only this record.
BEYOND_LIMIT = Raw('{"id":5,"name":"Huge","duration":' + "7" * 100_001 + ',"description":"d"}')


def _programme_pages(changed_duration: int) -> list[Page]:
    return [
        Page([programme(4), BEYOND_LIMIT, programme(6)]),
        Page([programme(7, duration=changed_duration)]),
    ]


@pytest.mark.parametrize("fingerprints", [True, False], ids=["fingerprinted", "text-fingerprints"])
def test_a_number_beyond_the_raised_limit_quarantines_its_record_alone_and_the_run_loads(spark, tmp_path, fingerprints):
    """A record holding a 100,001-digit number among normal records: the run loads and reconciles, that record is in
    quarantine (`unreadable_record`, its text whole), the others of its page and run are in silver; the next run
    counts it as known bad and writes nothing of it again."""
    storage, config = open_storage(str(tmp_path)), make_config(str(tmp_path))
    lake = Lake.at(str(tmp_path))
    first = write_run(
        storage,
        T0,
        programmes=_programme_pages(12),
        apprenticeships=[Page([apprenticeship(1)])],
        fingerprints=fingerprints,
    )
    loaded = run_transform(spark, config)
    assert loaded.loaded_run_ids == [first.run_id]
    (report,) = loaded.runs
    assert report.mismatches == []
    counts = {c.entity: c for c in report.entities}["programmes"]
    assert (counts.landed_records, counts.changed_records, counts.valid_rows, counts.quarantined_rows) == (4, 4, 3, 1)
    assert counts.bronze_rows == 4  # every record's text is kept, the refused one's too
    (bad,) = read_table(spark, lake, "silver/quarantine").collect()
    assert (bad.entity, bad.record_id, list(bad.reasons), bad.run_id) == (
        "programmes",
        "5",
        ["unreadable_record"],
        first.run_id,
    )
    assert bad.raw_record == BEYOND_LIMIT.text and bad.page_index == 0 and bad.record_index == 1
    programmes = read_table(spark, lake, "silver/programmes").collect()
    assert sorted(r.programme_id for r in programmes) == [4, 6, 7]
    audit = read_table(spark, lake, "_audit/runs").collect()
    assert [(r.run_id, r.status, r.reconciled) for r in audit] == [(first.run_id, "loaded", True)]
    assert dict(audit[0].quarantine_reasons) == {"programmes/unreadable_record": 1}

    second = write_run(
        storage,
        T0 + dt.timedelta(hours=1),
        programmes=_programme_pages(13),  # programme 7 changed: the run is read, not skipped
        apprenticeships=[Page([apprenticeship(1)])],
        fingerprints=fingerprints,
    )
    again = run_transform(spark, config)
    assert again.loaded_run_ids == [second.run_id]
    (report,) = again.runs
    assert report.mismatches == []
    counts = {c.entity: c for c in report.entities}["programmes"]
    assert (counts.unchanged_records, counts.known_bad_records, counts.changed_records) == (2, 1, 1)
    assert (counts.bronze_rows, counts.valid_rows, counts.quarantined_rows) == (1, 1, 0)
    assert read_table(spark, lake, "silver/quarantine").count() == 1
    assert read_table(spark, lake, "bronze/programmes").count() == 5
    durations = {r.programme_id: r.duration for r in read_table(spark, lake, "silver/programmes").collect()}
    assert durations == {4: 12, 6: 12, 7: 13}


def test_a_line_beyond_the_limit_is_split_exactly_and_a_line_that_is_not_json_still_fails(spark, tmp_path):
    """The refused line is cut apart, not rewritten; a broken line (not JSON) among such lines still fails its run,
    with its file named, and a part holding only the first is not taken for the broken one."""
    storage = open_storage(str(tmp_path))
    landed = write_run(
        storage,
        T0,
        programmes=[Page([programme(4), BEYOND_LIMIT]), Page([programme(6)])],
        pages_per_part=1,
        commit=False,
        fingerprints=True,
    )
    keys = tuple(landed.keys["programmes"])
    split = split_refused_lines(spark, storage.root, keys, "s3a", landed.run_id)
    ((*page, path),) = split.rows
    assert (
        keys[0] in path
        and page[3] == 0
        and page[6] == [json.dumps(programme(4), separators=(",", ":")), BEYOND_LIMIT.text]
    )
    assert len(page[5]) == 2  # the fingerprints, as landed
    storage.put(keys[1], gzip.compress(gzip.decompress(storage.get(keys[1]))[:-20] + b"\n"))
    with pytest.raises(LandingReadError) as broken:
        split_refused_lines(spark, storage.root, keys, "s3a", landed.run_id)
    assert keys[1] in str(broken.value) and "Malformed records are detected" in str(broken.value)
    assert find_unreadable_part(spark, storage.root, keys, "s3a") == keys[1]
