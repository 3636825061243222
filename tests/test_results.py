"""The results the steps return and a job reports: the summary table, a job's closing lines and JSON fields."""

import dataclasses
import datetime as dt
import json

from multiverse_etl.transform.results import (
    EntityCounts,
    GoldSummary,
    MergeOutcome,
    RunReport,
    TransformResult,
    summary_table,
)


def balanced() -> EntityCounts:
    """12 landed records of a run: 1 unchanged, 1 known bad, 10 changed; 3 inserted, 2 updated, 1 deleted."""
    return EntityCounts(
        "apprenticeships",
        landed_records=12,
        unchanged_records=1,
        known_bad_records=1,
        changed_records=10,
        quarantined_rows=1,
        duplicates_collapsed=1,
        inserted=3,
        updated=2,
        unchanged=3,
        deleted=1,
        silver_live_rows=7,
    )


def test_summary_table_has_one_line_per_entity_and_the_verdict():
    bad = dataclasses.replace(balanced(), entity="projects", merge_inserted=0)
    lines = summary_table(
        [("20260302T090000Z-a0a0a0", [balanced(), bad], ["projects: planned inserts 3 != MERGE rows inserted 0"])],
        extra=["runs loaded: 1"],
    )
    assert lines[0].split() == [
        "run",
        "entity",
        "landed",
        "same",
        "kn.bad",
        "changed",
        "quarant.",
        "dupes",
        "inserted",
        "updated",
        "unchanged",
        "deleted",
        "live",
        "ok",
    ]
    assert lines[2].split() == [
        "20260302T090000Z-a0a0a0",
        "apprenticeships",
        "12",
        "1",
        "1",
        "10",
        "1",
        "1",
        "3",
        "2",
        "3",
        "1",
        "7",
        "yes",
    ]
    assert lines[3].split()[1] == "projects" and lines[3].split()[-1] == "NO"
    assert lines[-1] == "runs loaded: 1"


def test_a_merge_outcome_counts_restored_rows_as_live_again():
    assert MergeOutcome(inserted=3, restored=2, deleted=4).live_change == 1


def test_a_job_closes_with_the_table_gold_and_its_totals_as_json_fields():
    report = RunReport("20260302T090000Z-a0a0a0", dt.date(2026, 3, 2), "full", dt.datetime(2026, 3, 2, 9))
    report.entities.append(balanced())
    result = TransformResult(
        "transform-1", [report], gold_mode="merged", gold=GoldSummary(7, 20, 1, 2), duration_s=3.25, spark_jobs=40
    )
    lines = result.summary_lines()
    assert lines[2].split()[:3] == ["20260302T090000Z-a0a0a0", "apprenticeships", "12"]
    assert lines[-1] == (
        "runs loaded: 1; gold merged: 7 apprenticeships (1 with an unknown programme), "
        "20 projects (2 with an unknown apprenticeship); 3.2s; 40 Spark jobs"
    )
    extra = json.loads(json.dumps(result.summary_extra()))
    assert (extra["inserted"], extra["deleted"], extra["gold_mode"], extra["spark_jobs"]) == (3, 1, "merged", 40)
    assert extra["landing_run_ids"] == ["20260302T090000Z-a0a0a0"]
