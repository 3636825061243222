"""The classification: landed records against silver and quarantine, before anything is validated.

One lake, seven runs landed as the extractor lands them (fingerprints in the lines, digests in the manifest),
each exercising several cases on keys of their own:

* apprenticeship 2 is deleted (run 2) and comes back as it was (run 3): restored, not written to bronze again;
* project (1, 10) changes and changes back within one landing (run 2: graded on page 0, pending again on a later
  page): the later, unchanged record wins, as it would if every record had been validated;
* project (1, 11) turns bad (run 2), good again (run 3), bad again (run 4): one quarantine row, known bad after;
* project (2, 20) goes with its deleted apprenticeship (run 2) and comes back with it (run 3);
* project (4, 40): its parent's listing is missing from run 3: nothing is inferred gone from a listing not made;
* run 5 lands exactly what run 4 landed: nothing is read, nothing written but its audit row;
* run 6, after a new rules version: every record is validated again and silver's fingerprints are refreshed, no
  content changes; run 7, the same again under the new rules: not read.

Gold's counts in a run that changes nothing come from the last audit row, not from reading gold, unless gold moved
since that row (a job that crashed after writing gold and before its audit row).
"""

import datetime as dt
import logging

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from conftest import make_config
from multiverse_etl.entities import entity as spec_of
from multiverse_etl.lake import Lake
from multiverse_etl.storage import open_storage
from multiverse_etl.transform import run_transform
from multiverse_etl.transform.classify import classify_records, known_versions
from multiverse_etl.transform.tables import read_table
from support.delta_log import history_version
from support.landed import T0, Page, apprenticeship, programme, project, write_run

DAY = dt.timedelta(days=1)
UTC = dt.timezone.utc


def _projects_of(run: int) -> list[Page]:
    pending, bad = {"status": "pending"}, {"status": "in_review"}
    if run == 1:
        return [
            Page([project(10, **pending), project(11, **pending)], parent=1),
            Page([project(20)], parent=2),
            Page([project(40)], parent=4),
        ]
    if run == 2:  # (1, 10) changed then back on a later page; (1, 11) bad; apprenticeship 2 gone
        return [
            Page([project(10, status="graded")], parent=1, page_index=0),
            Page([project(10, **pending), project(11, **bad)], parent=1, page_index=1),
            Page([project(40)], parent=4),
        ]
    pages = [
        Page([project(10, **pending), project(11, **(bad if run >= 4 else pending))], parent=1),
        Page([project(20)], parent=2),
    ]
    return pages  # run 3 on: parent 4's listing is missing


def _apprenticeships_of(run: int) -> list[Page]:
    return [Page([apprenticeship(1), apprenticeship(4)] + ([] if run == 2 else [apprenticeship(2)]))]


def _land(storage, run: int):
    return write_run(
        storage,
        T0 + run * DAY,
        programmes=[Page([programme(7)])],
        apprenticeships=_apprenticeships_of(run),
        projects=_projects_of(min(run, 4)),
        fingerprints=True,
    )


@pytest.fixture(scope="module")
def history(spark, tmp_path_factory):
    """Each run landed then transformed; per run: its report, silver/bronze/quarantine rows, table versions."""
    import multiverse_etl.transform.classify as classify

    root = str(tmp_path_factory.mktemp("classify-lake"))
    storage, config, lake = open_storage(root), make_config(root), Lake.at(root)
    out: dict = {"lake": (storage, config, lake)}
    rules = classify.RULES_VERSION
    messages = _Messages()
    logging.getLogger("multiverse_etl.transform").addHandler(messages)
    try:
        for run in range(1, 8):
            if run == 6:
                classify.RULES_VERSION = rules + 1
            _land(storage, run)
            messages.lines.clear()
            result = run_transform(spark, config)
            [report] = result.runs
            out[run] = {
                "report": report,
                "entities": {c.entity: c for c in report.entities},
                "gold": result.gold_mode,
                "gold_counts": result.gold,
                "gold_actual": _gold_counts(spark, lake),
                "gold_not_read": any("gold unchanged since its counts were recorded" in m for m in messages.lines),
            }
            out[run].update({what: read(spark, lake) for what, read in _READS.items() if run in _READ_AFTER[what]})
    finally:
        classify.RULES_VERSION = rules
        logging.getLogger("multiverse_etl.transform").removeHandler(messages)
    return out


# What each run's state is read for, and after which runs the tests look at it: reading it after every run would
# cost Spark jobs (three counts and three collects per run, and five commit listings) and assert nothing more.
_READS = {
    "silver_a": lambda spark, lake: {
        r.apprenticeship_id: r for r in read_table(spark, lake, "silver/apprenticeships").collect()
    },
    "silver_p": lambda spark, lake: {
        (r.apprenticeship_id, r.project_id): r for r in read_table(spark, lake, "silver/projects").collect()
    },
    "bronze": lambda spark, lake: {
        t: read_table(spark, lake, f"bronze/{t}").count() for t in ("apprenticeships", "projects", "programmes")
    },
    "quarantine": lambda spark, lake: read_table(spark, lake, "silver/quarantine").collect(),
    "versions": lambda spark, lake: {
        t: history_version(spark, lake, t)
        for t in (
            "silver/apprenticeships",
            "silver/projects",
            "silver/programmes",
            "silver/quarantine",
            "bronze/projects",
        )
    },
}
_READ_AFTER = {
    "silver_a": {2, 3, 5, 6},
    "silver_p": {1, 2, 3},
    "bronze": {1, 3, 4, 5},
    "quarantine": {4},
    "versions": {3, 4, 5},
}


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _gold_counts(spark, lake) -> tuple[int, int, int, int]:
    """Rows and rows with an unknown parent of both gold tables, read from the tables themselves (one job each)."""
    a = read_table(spark, lake, "gold/apprenticeships")
    p = read_table(spark, lake, "gold/apprenticeship_projects")
    rows_a, orphans_a = a.agg(F.count(F.lit(1)), F.count(F.when(~F.col("programme_known"), 1))).first()
    rows_p, orphans_p = p.agg(F.count(F.lit(1)), F.count(F.when(~F.col("apprenticeship_known"), 1))).first()
    return (rows_a, rows_p, orphans_a, orphans_p)


def _as_tuple(summary) -> tuple:
    return (
        summary.gold_apprenticeships,
        summary.gold_apprenticeship_projects,
        summary.orphan_apprenticeships,
        summary.orphan_projects,
    )


def test_a_deleted_apprenticeship_that_returns_is_restored_and_not_written_to_bronze_again(history):
    assert history[2]["silver_a"][2].is_deleted and history[2]["silver_p"][(2, 20)].is_deleted
    assert not history[3]["silver_a"][2].is_deleted and not history[3]["silver_p"][(2, 20)].is_deleted
    a3 = history[3]["entities"]["apprenticeships"]
    assert (a3.unchanged_records, a3.changed_records, a3.updated, a3.inserted, a3.silver_live_rows) == (2, 1, 1, 0, 3)
    assert history[3]["bronze"]["apprenticeships"] == history[1]["bronze"]["apprenticeships"] == 3


def test_a_record_changed_and_changed_back_within_one_landing_resolves_as_a_full_ranking_would(history):
    p2 = history[2]["entities"]["projects"]
    # landed: (1,10) graded, (1,10) pending, (1,11) bad, (4,40): two unchanged, two changed
    assert (p2.unchanged_records, p2.known_bad_records, p2.changed_records) == (2, 0, 2)
    # (1,10) pending stands for silver's version in the ranking and wins (a later page): unchanged, not updated
    assert (p2.revisited_records, p2.duplicates_collapsed, p2.updated, p2.unchanged) == (1, 1, 0, 1)
    assert history[2]["silver_p"][(1, 10)].status == "pending"
    assert history[2]["silver_p"][(1, 10)].run_id == history[1]["silver_p"][(1, 10)].run_id


def test_a_record_that_turns_bad_and_good_again_is_quarantined_once_and_known_after(history):
    assert history[2]["silver_p"][(1, 11)].status == "pending" and not history[2]["silver_p"][(1, 11)].is_deleted
    bad = [r for r in history[4]["quarantine"] if r.record_id == "11"]
    assert len(bad) == 1 and list(bad[0].reasons) == ["unknown_status:status"]
    p3, p4 = history[3]["entities"]["projects"], history[4]["entities"]["projects"]
    # good again = silver's own version: unchanged ((1, 10) too; (2, 20) is back, so changed)
    assert (p3.unchanged_records, p3.changed_records) == (2, 1)
    assert (p4.known_bad_records, p4.changed_records, p4.quarantine_written) == (1, 0, 0)
    assert history[4]["versions"]["silver/quarantine"] == history[3]["versions"]["silver/quarantine"]


def test_a_missing_listing_proves_nothing_gone(history):
    assert not history[3]["silver_p"][(4, 40)].is_deleted
    assert history[3]["entities"]["projects"].deleted == 0


def test_a_landing_identical_to_the_last_loaded_one_is_not_read_and_writes_nothing_but_its_audit_row(history):
    assert sorted(history[5]["report"].skipped) == ["apprenticeships", "programmes", "projects"]
    assert history[5]["versions"] == history[4]["versions"]  # no commit to silver, quarantine or bronze
    assert history[5]["bronze"] == history[4]["bronze"]
    assert history[5]["gold"] == "unchanged"
    p5 = history[5]["entities"]["projects"]
    assert (p5.landed_records, p5.unchanged_records, p5.known_bad_records, p5.changed_records) == (3, 2, 1, 0)


def test_a_run_that_changes_nothing_takes_golds_counts_from_the_last_audit_row_without_reading_gold(history):
    not_read = [run for run in range(1, 8) if history[run]["gold_not_read"]]
    assert not_read == [run for run in range(1, 8) if history[run]["gold"] == "unchanged"]
    assert {5, 7} <= set(not_read)  # the identical landings (run 4 only turns a bad record bad again: gold unchanged)
    for run in range(1, 8):
        assert _as_tuple(history[run]["gold_counts"]) == history[run]["gold_actual"], run


def test_golds_counts_are_read_again_when_gold_moved_after_the_last_audit_row(history, spark, monkeypatch):
    """A job that wrote gold and crashed before its audit row: the next job must not take the older row's counts."""
    import multiverse_etl.transform.run as run_module

    storage, config, lake = history["lake"]
    write_run(
        storage,
        T0 + 8 * DAY,
        programmes=[Page([programme(7)])],
        apprenticeships=[Page([apprenticeship(1), apprenticeship(2), apprenticeship(4), apprenticeship(9)])],
        projects=_projects_of(4),
        fingerprints=True,
    )
    real_write_audit = run_module.write_audit

    def crash(*args, **kwargs):
        raise RuntimeError("the job died before its audit row")

    monkeypatch.setattr(run_module, "write_audit", crash)
    with pytest.raises(RuntimeError, match="died before its audit row"):
        run_transform(spark, config)
    monkeypatch.setattr(run_module, "write_audit", real_write_audit)
    again = run_transform(spark, config)
    assert again.gold_mode == "unchanged"  # gold was written by the job that crashed
    actual = _gold_counts(spark, lake)
    assert actual[0] == history[7]["gold_actual"][0] + 1  # apprenticeship 9: the older row's counts are stale
    assert _as_tuple(again.gold) == actual


def test_a_new_rules_version_validates_everything_again_and_refreshes_fingerprints_only(history):
    six = history[6]["entities"]
    assert history[6]["report"].skipped == []
    assert six["projects"].changed_records == 3 and six["apprenticeships"].changed_records == 3
    assert (six["apprenticeships"].refreshed, six["apprenticeships"].updated, six["apprenticeships"].inserted) == (
        3,
        0,
        0,
    )
    for key, row in history[6]["silver_a"].items():
        before = history[5]["silver_a"][key]
        assert (row.name, row.run_id, row.is_deleted) == (before.name, before.run_id, before.is_deleted)
        assert row.fingerprint != before.fingerprint
    # the bad version is validated again and quarantined under its new fingerprint (its reasons may differ now)
    assert six["projects"].quarantine_written == 1
    assert sorted(history[7]["report"].skipped) == ["apprenticeships", "programmes", "projects"]


def test_classify_records_tells_unchanged_known_bad_changed_and_unseen(spark):
    spec = spec_of("programmes")
    silver_schema = "programme_id bigint, is_deleted boolean, extracted_at timestamp, fingerprint bigint"
    t1 = dt.datetime(2026, 3, 1, tzinfo=UTC)
    silver = spark.createDataFrame(
        [(7, False, t1, 100), (8, False, t1, 200), (9, True, t1, 300), (10, False, t1, None)], silver_schema
    )
    quarantine = spark.createDataFrame(
        [("programmes", None, "12", 900), ("projects", 3, "12", 400)],
        "entity string, parent_apprenticeship_id bigint, record_id string, fingerprint bigint",
    )
    landed_schema = T.StructType(
        [
            T.StructField(n, t)
            for n, t in (
                ("run_id", T.StringType()),
                ("ingest_date", T.DateType()),
                ("extracted_at", T.TimestampType()),
                ("landing_file", T.StringType()),
                ("page_index", T.IntegerType()),
                ("record_index", T.IntegerType()),
                ("parent_apprenticeship_id", T.LongType()),
                ("fingerprint", T.LongType()),
            )
        ]
    )
    day, t2 = dt.date(2026, 3, 2), dt.datetime(2026, 3, 2, tzinfo=UTC)
    landed = spark.createDataFrame(
        [("r", day, t2, "f", 0, i, None, fp) for i, fp in enumerate((100, 900, 555, 300, 400))], landed_schema
    )
    classified = landed.transform(classify_records(spec, known_versions(spec, silver, quarantine)))
    actual = classified.select("record_index", "_class", "programme_id").orderBy(
        F.col("record_index").asc_nulls_last(), "programme_id"
    )
    expected = spark.createDataFrame(
        [
            (0, "unchanged", 7),  # silver's live row 7 was built from this version
            (1, "known_bad", 12),  # quarantine holds it (its id read from record_id)
            (2, "changed", None),  # never seen
            (3, "changed", None),  # the version of a deleted row: back, so changed
            (4, "changed", None),  # a fingerprint quarantine holds for another entity
            (None, "unseen", 8),  # live, no landed record matched it: a complete listing may prove it gone
            (None, "unseen", 10),  # live, older than fingerprints: never matched, so unseen
        ],
        "record_index int, _class string, programme_id bigint",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_class_counts_are_observed_while_the_classification_is_held_each_live_row_matched_once(spark):
    """A version landed twice (a list that shifted while paged) counts its copy; a live row matched by two copies
    is one live row, as the counts reconcile against silver's live rows."""
    import json
    import uuid

    from pyspark.sql import Observation

    from multiverse_etl.transform.classify import class_counts
    from multiverse_etl.transform.frames import hold, release

    spec = spec_of("programmes")
    t1, t2, day = dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 3, 2, tzinfo=UTC), dt.date(2026, 3, 2)
    silver = spark.createDataFrame(
        [(7, False, t1, 100), (8, False, t1, 200)],
        "programme_id bigint, is_deleted boolean, extracted_at timestamp, fingerprint bigint",
    )
    quarantine = spark.createDataFrame(
        [], "entity string, parent_apprenticeship_id bigint, record_id string, fingerprint bigint"
    )
    landed = spark.createDataFrame(
        [
            ("r", day, t2, f, p, i, None, fp)
            for f, p, i, fp in (("a", 0, 0, 100), ("b", 1, 0, 100), ("a", 0, 1, 555), ("b", 1, 1, 555))
        ],
        "run_id string, ingest_date date, extracted_at timestamp, landing_file string, page_index int, "
        "record_index int, parent_apprenticeship_id bigint, fingerprint bigint",
    )
    counted = Observation(f"classes_{uuid.uuid4().hex[:8]}")
    classified = hold(
        landed.transform(classify_records(spec, known_versions(spec, silver, quarantine))).observe(
            counted, *class_counts()
        )
    )
    try:
        counts = dict(counted.get)
        assert json.loads(counts.pop("changed_files")) in (["a", "b"], ["b", "a"])
        assert {k: int(v) for k, v in counts.items()} == {
            "unchanged": 2,
            "known_bad": 0,
            "changed": 2,
            "unseen": 1,  # live row 8
            "copies": 1,  # 555 landed twice: one copy (page 0's), the latest occurrence kept
            "_matched_live": 1,  # live row 7, matched by both copies of 100
        }
        kept = classified.where("_class = 'changed' AND _copy_rank = 1").select("landing_file").collect()
        assert [row.landing_file for row in kept] == ["b"]  # the later page
    finally:
        release(classified)
