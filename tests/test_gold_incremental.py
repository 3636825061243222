"""Incremental gold: after every run gold holds exactly the joins of silver's live rows, row for row.

The landing runs are the replica's data (sample_api.data) at generations 0 → 1 → 2 → 3 (changes,
additions, deletions, project-status changes, corrupted records), landed whole as the extractor lands
them; then the same data again, then a run that changes one programme's attributes only (which
touches every apprenticeship of that programme in both gold tables). The reference is the oracle's gold
(tests/support/oracle.py `reference_gold`: the joins in plain Python, not `transform/gold.py`) over the live
silver rows the lake holds after each run; the code under test filters to the touched apprenticeships and
MERGEs. The chains in test_reliability compare the whole lake of incremental runs with the oracle of the ground truth.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

from pyspark.sql import functions as F

from conftest import make_config
from multiverse_etl.lake import Lake
from multiverse_etl.storage import open_storage
from multiverse_etl.transform import run_transform
from multiverse_etl.transform.tables import read_table
from sample_api.data import build_dataset
from support.delta_log import history_version
from support.lake import Comparison, compare_gold_with_silver
from support.landed import T0, Page, Raw, write_run

SCALE, SEED, CORRUPT = 120, 5, 0.03


def land_generation(storage, generation: int, started_at: dt.datetime) -> None:
    """One full run of the replica's data at `generation`: every apprenticeship, its projects, every programme."""
    ds = build_dataset(SCALE, SEED, generation, CORRUPT)
    rows = [Raw(ds.apprenticeship_row(pos).decode()) for pos in range(len(ds))]
    projects = []
    for aid in ds.ids:
        first, count = ds.project_range(aid)
        projects.append(Page([Raw(ds.project_row(first + i, i).decode()) for i in range(count)], parent=aid))
    write_run(
        storage,
        started_at,
        apprenticeships=[Page(rows[s : s + 50]) for s in range(0, len(rows), 50)],
        projects=projects,
        programmes=[Page([Raw(r.decode()) for r in ds.programme_rows])],
        suffix=f"a0a0{generation:02x}",
    )


def table_rows(frame) -> Counter:
    return Counter(tuple(row) for row in frame.collect())


def assert_gold_is_the_joins_of_silver(spark, config) -> Comparison:
    comparison = compare_gold_with_silver(spark, config)
    assert comparison.ok, "gold is not the joins of silver:\n" + comparison.describe()
    return comparison


def test_incremental_gold_is_the_joins_of_silver_over_generations_0_to_3_and_a_programme_change(spark, tmp_path):
    root = str(tmp_path / "lake")
    # Every change merged, however large its share (the default rebuilds above 1%: checked at the end).
    config, storage, lake = (
        make_config(root, transform={"gold_merge_max_share": 1.0}),
        open_storage(root),
        Lake.at(root),
    )
    modes, touched = [], []
    for generation in range(4):
        land_generation(storage, generation, T0 + dt.timedelta(days=generation))
        result = run_transform(spark, config)
        modes.append(result.gold_mode)
        touched.append(sum(c.inserted + c.updated + c.deleted for c in result.runs[0].entities))
        # the counts the run audited are the tables' row counts (the rows the comparison read: no second scan)
        gold_rows = assert_gold_is_the_joins_of_silver(spark, config).gold_rows
        assert result.gold.gold_apprenticeships == gold_rows["gold/apprenticeships"]
        assert result.gold.gold_apprenticeship_projects == gold_rows["gold/apprenticeship_projects"]
    assert modes == ["rebuilt", "merged", "merged", "merged"]
    assert all(n > 0 for n in touched[1:])  # each generation changed silver: the merges had work to do

    # The same data again changes nothing: gold is not written, its counts still audited.
    versions = {t: history_version(spark, lake, t) for t in ("gold/apprenticeships", "gold/apprenticeship_projects")}
    land_generation(storage, 3, T0 + dt.timedelta(days=4))
    again = run_transform(spark, config)
    assert again.gold_mode == "unchanged" and again.gold == result.gold
    assert all(c.inserted + c.updated + c.deleted == 0 for c in again.runs[0].entities)
    assert {t: history_version(spark, lake, t) for t in versions} == versions

    # A programme's attributes change, nothing else: every gold row of its apprenticeships changes.
    programme = (
        read_table(spark, lake, "gold/apprenticeships")
        .where(F.col("programme_known"))
        .groupBy("programme_id")
        .count()
        .orderBy(F.desc("count"), "programme_id")
        .first()
    )
    silver = read_table(spark, lake, "silver/programmes").where(F.col("programme_id") == programme.programme_id).first()
    renamed = {
        "id": silver.programme_id,
        "name": f"{silver.name} (renamed)",
        "duration": silver.duration,
        "description": silver.description,
    }
    write_run(
        storage,
        T0 + dt.timedelta(days=5),
        programmes=[Page([renamed])],
        mode="incremental",
        complete_listing={"apprenticeships": False, "projects": False, "programmes": False},
        suffix="b0b0b0",
    )
    result = run_transform(spark, config)
    assert result.gold_mode == "merged"
    assert_gold_is_the_joins_of_silver(spark, config)
    of_programme = read_table(spark, lake, "gold/apprenticeships").where(F.col("programme_id") == silver.programme_id)
    assert {r.programme_name for r in of_programme.collect()} == {renamed["name"]}
    assert of_programme.count() == programme["count"] > 1
    projects = read_table(spark, lake, "gold/apprenticeship_projects").where(
        F.col("programme_id") == silver.programme_id
    )
    assert projects.count() > 0 and {r.programme_name for r in projects.collect()} == {renamed["name"]}

    # The run's Spark jobs are in its audit row; a rebuild on demand gives the same rows.
    audit = read_table(spark, lake, "_audit/runs").where(F.col("run_id") == result.runs[0].run_id).first()
    assert audit.spark_jobs == result.spark_jobs > 0
    before = {t: table_rows(read_table(spark, lake, t)) for t in versions}
    rebuilt = run_transform(spark, config, rebuild_gold=True)
    assert rebuilt.runs == [] and rebuilt.gold_mode == "rebuilt"
    assert {t: table_rows(read_table(spark, lake, t)) for t in versions} == before
    json.dumps(rebuilt.summary_extra())  # the closing event's fields stay JSON

    # With the default share, a generation touching far more than 1% of the apprenticeships rebuilds gold.
    land_generation(storage, 4, T0 + dt.timedelta(days=6))
    result = run_transform(spark, make_config(root))
    touched = sum(c.inserted + c.updated + c.deleted for c in result.runs[0].entities if c.entity == "apprenticeships")
    assert result.gold_mode == "rebuilt" and touched > 0.01 * result.gold.gold_apprenticeships
    assert_gold_is_the_joins_of_silver(spark, config)


def test_past_the_merge_share_by_what_the_merges_named_silver_is_not_read_for_the_touched_set(spark, monkeypatch):
    """The MERGEs named 5 of gold's 100 apprenticeships, the share allows 1: rebuilt, and silver is not scanned for
    the touched set (a programme's change could only add to it); 1 named: the touched set is built and counted."""
    from concurrent.futures import ThreadPoolExecutor

    from multiverse_etl.transform import gold_refresh
    from multiverse_etl.transform.context import Job
    from multiverse_etl.transform.gold import SilverChanges
    from multiverse_etl.transform.results import GoldSummary

    built = []

    def touched(spark_, changes, apprenticeships):
        built.append(sorted(changes.touched["apprenticeship_id"]))
        return spark_.createDataFrame([(i,) for i in changes.touched["apprenticeship_id"]], "apprenticeship_id bigint")

    monkeypatch.setattr(gold_refresh, "_still_counted", lambda job, counted: GoldSummary(100, 300, 0, 0))
    monkeypatch.setattr(gold_refresh, "read_table", lambda *args: None)  # the silver table: never scanned here
    monkeypatch.setattr(gold_refresh, "touched_apprenticeships", touched)
    with ThreadPoolExecutor(1) as pool:
        job = Job(spark, None, "job", pool, gold_merge_max_share=0.01)  # type: ignore[arg-type]
        many = SilverChanges(touched={"apprenticeship_id": frozenset(range(5))})
        assert gold_refresh._ids_worth_merging(job, many, None) is None and built == []
        one = SilverChanges(touched={"apprenticeship_id": frozenset({7})})
        ids = gold_refresh._ids_worth_merging(job, one, None)
        assert ids is not None and [r.apprenticeship_id for r in ids.collect()] == [7] and built == [[7]]
        ids.unpersist()
