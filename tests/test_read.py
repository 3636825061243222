"""Landing → bronze: committed manifests, exploded pages with lineage, FAILFAST reads that name the broken file."""

import datetime as dt
import gzip
import re

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from multiverse_etl.entities import ENTITIES
from multiverse_etl.landing import LandingError, Manifest
from multiverse_etl.storage import open_storage
from multiverse_etl.transform.read import (
    LandingReadError,
    PageChecks,
    explode_pages,
    find_unreadable_part,
    landing_problems,
    landing_read_error,
    page_checks,
    plan_run,
    read_landing_pages,
)
from multiverse_etl.transform.schemas import BRONZE_SCHEMA, LANDING_PAGE_SCHEMA
from support.landed import T0, Page, apprenticeship, write_run

UTC = dt.timezone.utc
RUN = "20260302T090000Z-a0a0a0"
PART = f"raw/projects/ingest_date=2026-03-02/run_id={RUN}/part-00000.jsonl.gz"
PAGES_SCHEMA = T.StructType(LANDING_PAGE_SCHEMA.fields + [T.StructField("landing_path", T.StringType())])


def pages_frame(spark, pages):
    return spark.createDataFrame(pages, PAGES_SCHEMA)


def test_explode_pages_gives_one_bronze_row_per_record_with_lineage(spark):
    pages = pages_frame(
        spark,
        [
            (
                "projects",
                RUN,
                "2026-03-02T09:00:01.123456Z",
                0,
                (17,),
                None,
                ['{"id":1}', '{"id":2,"title":"x"}'],
                f"s3a://bucket/lake/{PART}",
            ),
            ("projects", RUN, "2026-03-02T09:00:02+00:00", 1, (17,), None, ['{"id":3}'], f"file:/tmp/lake/{PART}"),
            (
                "projects",
                RUN,
                "2026-03-02T09:00:03.5Z",
                0,
                (18,),
                [],
                [],
                f"file:/tmp/lake/{PART}",
            ),  # a listing with no projects
            ("projects", RUN, "2026-03-02T09:00:04Z", 0, (19,), None, None, f"file:/tmp/lake/{PART}"),
        ],
    )
    day = dt.date(2026, 3, 2)
    expected = spark.createDataFrame(
        [
            (RUN, day, dt.datetime(2026, 3, 2, 9, 0, 1, 123456, tzinfo=UTC), PART, 0, 0, 17, '{"id":1}'),
            (RUN, day, dt.datetime(2026, 3, 2, 9, 0, 1, 123456, tzinfo=UTC), PART, 0, 1, 17, '{"id":2,"title":"x"}'),
            (RUN, day, dt.datetime(2026, 3, 2, 9, 0, 2, tzinfo=UTC), PART, 1, 0, 17, '{"id":3}'),
        ],
        T.StructType(BRONZE_SCHEMA.fields[:-1]),
    )
    exploded = pages.transform(explode_pages(RUN))
    assert exploded.columns == BRONZE_SCHEMA.fieldNames()
    assert_df_equality(exploded.drop("fingerprint"), expected, ignore_row_order=True, ignore_nullable=True)
    assert exploded.where(F.col("fingerprint").isNull()).count() == 0


def test_a_records_fingerprint_follows_its_text_and_parent_or_the_one_the_extractor_landed(spark):
    """Without landed fingerprints the record's text decides (same text and parent, same fingerprint); with them,
    the landed value decides, whatever Spark made of the text."""
    pages = pages_frame(
        spark,
        [
            ("projects", RUN, "2026-03-02T09:00:01Z", 0, (17,), None, ['{"id":1}', '{"id":1}', '{"id":2}'], PART),
            ("projects", RUN, "2026-03-02T09:00:02Z", 0, (18,), None, ['{"id":1}'], PART),
            ("projects", RUN, "2026-03-02T09:00:03Z", 0, (19,), [5, 5, 6], ['{"id":1}', '{"id":2}', '{"id":1}'], PART),
        ],
    )
    fp = {
        (r.parent_apprenticeship_id, r.record_index): r.fingerprint
        for r in pages.transform(explode_pages(RUN)).collect()
    }
    assert fp[(17, 0)] == fp[(17, 1)] != fp[(17, 2)]
    assert fp[(18, 0)] != fp[(17, 0)]  # another parent
    assert fp[(19, 0)] == fp[(19, 1)] != fp[(19, 2)]  # the landed fingerprints decide


def test_page_checks_count_pages_records_and_listings_that_returned_nothing(spark):
    pages = pages_frame(
        spark,
        [
            ("projects", RUN, "2026-03-02T09:00:01Z", 0, (17,), [1, 2], ['{"id":1}', '{"id":2}'], PART),
            ("projects", RUN, "2026-03-02T09:00:02Z", 0, (18,), [], [], PART),
            ("projects", "20260101T000000Z-ffffff", "not a time", None, (19,), None, [], PART),
            ("apprenticeships", RUN, "2026-03-02T09:00:04Z", 1, (20,), None, None, PART),
        ],
    )
    observed = pages.agg(*page_checks(RUN, "projects")).first().asDict()
    assert observed == {
        "pages": 4,
        "records": 2,
        "pages_without_data": 1,
        "pages_without_fingerprints": 2,
        "pages_of_other_runs": 1,
        "pages_of_other_entities": 1,
        "pages_without_time": 1,
        "pages_without_index": 1,
        "empty_parents": "18,19,20",
    }
    checks = PageChecks.of(observed)
    assert checks == PageChecks(4, 2, 1, 2, 1, 1, 1, 1, empty_parents="18,19,20")  # every check, by its name
    assert landing_problems(RUN, "projects", checks, expected_pages=5) == [
        "projects: 4 pages read, the manifest says 5",
        "projects: 1 page(s) have no data array",
        "projects: 1 page(s) belong to another run",
        "projects: 1 page(s) belong to another entity",
        "projects: 1 page(s) have no readable extracted_at",
        "projects: 1 page(s) have no page_index",
    ]
    assert landing_problems(RUN, "projects", PageChecks(pages=3), expected_pages=3) == []
    assert PageChecks.of({"pages": None, "empty_parents": None}) == PageChecks()  # sums over no pages are null


def test_a_committed_manifest_becomes_the_run_plan(tmp_path):
    landed = write_run(
        open_storage(str(tmp_path)), T0, apprenticeships=[Page([apprenticeship(1)]), Page([])], mode="incremental"
    )
    plan = plan_run(landed.manifest, ENTITIES)
    assert (plan.run_id, plan.ingest_date, plan.mode, plan.started_at) == (
        landed.run_id,
        dt.date(2026, 3, 2),
        "incremental",
        T0,
    )
    assert plan.parts["apprenticeships"] == tuple(landed.keys["apprenticeships"]) and plan.parts["programmes"] == ()
    assert (plan.pages["apprenticeships"], plan.records["apprenticeships"]) == (2, 1)
    assert plan.complete_listing == {"apprenticeships": False, "projects": True, "programmes": True}


def test_a_manifest_that_breaks_the_landing_contract_is_refused(tmp_path):
    manifest = write_run(
        open_storage(str(tmp_path)), T0, apprenticeships=[Page([apprenticeship(1)])], commit=False
    ).manifest
    doc = manifest.to_json()
    with pytest.raises(LandingError, match="manifest_version 2 is not supported"):
        Manifest.from_json({**doc, "manifest_version": 2})
    with pytest.raises(LandingError, match="manifest_version None is not supported"):
        Manifest.from_json({k: v for k, v in doc.items() if k != "manifest_version"})
    with pytest.raises(LandingError, match="has no 'entities' section"):
        Manifest.from_json({**doc, "entities": None})
    moved = {
        **doc["entities"]["apprenticeships"],
        "parts": [{"key": "raw/projects/elsewhere.jsonl.gz", "pages": 1, "records": 1, "bytes": 1}],
    }
    with pytest.raises(LandingError, match="is outside raw/apprenticeships/"):
        plan_run(Manifest.from_json({**doc, "entities": {**doc["entities"], "apprenticeships": moved}}), ENTITIES)
    assert Manifest.from_json(doc) == manifest  # the JSON round trip keeps everything
    started = plan_run(Manifest.from_json({**doc, "started_at": None}), ENTITIES).started_at
    assert started == T0  # from the run id when the manifest lacks it


def test_a_truncated_or_non_json_landing_file_fails_with_its_name(spark, tmp_path):
    storage = open_storage(str(tmp_path))
    landed = write_run(storage, T0, apprenticeships=[Page([apprenticeship(i) for i in range(200)])], commit=False)
    key = landed.keys["apprenticeships"][0]
    whole = storage.get(key)
    storage.put(key, whole[: len(whole) // 2])
    with pytest.raises(Exception) as truncated:
        read_landing_pages(spark, storage.root, (key,), "s3a").count()
    error = landing_read_error(landed.run_id, (key,), truncated.value)
    assert isinstance(error, LandingReadError) and key in str(error) and "nothing of the run was loaded" in str(error)

    assert landing_read_error(landed.run_id, (key,), RuntimeError("connection reset by peer")) is None


def test_a_broken_part_among_several_is_found_by_reading_them_one_by_one(spark, tmp_path):
    """Spark does not name the file of a malformed line inside a valid gzip: the failure path finds it."""
    storage = open_storage(str(tmp_path))
    landed = write_run(
        storage,
        T0,
        apprenticeships=[Page([apprenticeship(1)]), Page([apprenticeship(2)]), Page([])],
        pages_per_part=1,
        commit=False,
    )
    keys = tuple(landed.keys["apprenticeships"])
    storage.put(keys[1], gzip.compress(gzip.decompress(storage.get(keys[1])) + b"{this is not json\n"))
    with pytest.raises(Exception) as garbled:
        read_landing_pages(spark, storage.root, keys, "s3a").agg(F.sum(F.size("data"))).collect()
    culprit = find_unreadable_part(spark, storage.root, keys, "s3a")
    assert culprit == keys[1]
    error = landing_read_error(landed.run_id, keys, garbled.value, culprit)
    # Spark 4 names the file itself (its full URI), Spark 3.5 does not (the key found above): either way, that file.
    message = str(error)
    assert isinstance(error, LandingReadError) and re.search(rf"landing file \S*{re.escape(keys[1])} ", message), (
        message
    )
    assert "Malformed" in message and keys[0] not in message and keys[2] not in message
