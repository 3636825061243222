"""End to end on the sample API with faults on: extract then transform, compared with the ground truth.

The lake must be the oracle's model of `sample_api.dump.ground_truth` (`support.oracle.reference_lake`, plain
Python, independent of the Spark code), read back and compared by `support.lake`: silver's live rows (no missing,
extra or duplicate key, every value), both gold tables whole, and the run's bronze and quarantine records.
"""

from pyspark.sql import functions as F

from conftest import make_config
from multiverse_etl.lake import Lake
from multiverse_etl.pipeline import run_pipeline
from multiverse_etl.transform import run_transform
from multiverse_etl.transform.tables import TABLES, read_table
from sample_api.dump import ground_truth
from sample_api.server import serve_in_background
from support.delta_log import history_version
from support.lake import assert_lake_matches, row_counts
from support.oracle import reference_lake

SCALE, SEED, CORRUPT = 150, 11, 0.04  # 150 apprenticeships: two deleted, eight modified, three added per generation
S3_SCALE = 80
FAULTS = dict(fault_rate=0.05, drop_rate=0.02, token_ttl=60, max_page_size=40, fault_seed=3)
API = {"page_size": 50, "concurrency": 8, "backoff_base_s": 0.01, "backoff_max_s": 0.2, "max_attempts": 12}


def pipeline(spark, config, generation, mode, scale=SCALE):
    with serve_in_background(scale=scale, seed=SEED, generation=generation, corrupt_rate=CORRUPT, **FAULTS) as api:
        configured = make_config(config.lake.root, env=config.env, api={"url": api.url, **API}, s3=vars(config.s3))
        return run_pipeline(configured, lambda: spark, mode=mode)


def reference(generation, scale=SCALE):
    """The oracle's lake for the sample API's ground truth of `generation` (the one the pipeline extracted)."""
    return reference_lake(ground_truth(scale, SEED, generation, CORRUPT))


def test_folder_lake_generations_0_1_2_equal_the_ground_truth(spark, tmp_path):
    """A full run, then two incremental runs (projects of every apprenticeship: deletions are seen)."""
    config = make_config(str(tmp_path / "lake"))
    lake = Lake.of(config)
    first = pipeline(spark, config, 0, "full")
    (report,) = first.transform.runs
    assert report.mismatches == []
    # one run in a new lake: all of bronze and all of the quarantine (every record with all its reasons) are its own
    comparison = assert_lake_matches(spark, config, reference(0))
    assert comparison.quarantined > 0

    pipeline(spark, config, 1, "incremental")
    last = pipeline(spark, config, 2, "incremental")
    assert last.transform.loaded_run_ids == [last.extract.run_id]
    assert last.extract.manifest.mode == "incremental"
    # an incremental run lands only what changed; bronze and quarantine hold each version once whichever run first
    # landed it, the last run's rows only versions it served; silver and gold must be all of it
    assert_lake_matches(spark, config, reference(2), run_id=last.extract.run_id)
    deleted = {
        r.apprenticeship_id for r in read_table(spark, lake, "silver/apprenticeships").where("is_deleted").collect()
    }
    gen0 = {a["id"] for a in ground_truth(SCALE, SEED, 0)["apprenticeships"]}
    gen2 = {a["id"] for a in ground_truth(SCALE, SEED, 2)["apprenticeships"]}
    assert deleted and deleted <= gen0 - gen2  # the generator deleted them; the lake marked them


def test_s3_lake_equals_the_ground_truth_and_a_second_pipeline_changes_no_content(spark, s3_config):
    import uuid

    config = make_config(
        f"{s3_config.lake.root}/pipeline-{uuid.uuid4().hex[:8]}", env="local-s3", s3=vars(s3_config.s3)
    )
    lake = Lake.of(config)
    first = pipeline(spark, config, 0, "full", S3_SCALE)
    assert_lake_matches(spark, config, reference(0, S3_SCALE))  # a new lake: bronze and quarantine of this run alone
    current_state = (
        "silver/apprenticeships",
        "silver/projects",
        "silver/programmes",
        "gold/apprenticeships",
        "gold/apprenticeship_projects",
    )
    before = {t: sorted(map(tuple, read_table(spark, lake, t).collect()), key=repr) for t in current_state}
    versions = {t: history_version(spark, lake, t) for t in TABLES}

    assert run_transform(spark, config).runs == []  # transform again: nothing to load, not one commit
    assert {t: history_version(spark, lake, t) for t in TABLES} == versions

    again = pipeline(spark, config, 0, "full", S3_SCALE)  # the whole pipeline again on an unchanged source
    counts = {c.entity: (c.inserted, c.updated, c.deleted) for c in again.transform.runs[0].entities}
    assert counts == {"programmes": (0, 0, 0), "apprenticeships": (0, 0, 0), "projects": (0, 0, 0)}
    after = {t: sorted(map(tuple, read_table(spark, lake, t).collect()), key=repr) for t in before}
    assert after == before
    # bronze and quarantine hold each version once: the second run, landing exactly what the first did, adds nothing
    # to either, and its audit row counts the bad records it saw again
    tables = ("bronze/apprenticeships", "bronze/projects", "bronze/programmes", "silver/quarantine")
    assert row_counts(spark, lake, tables, F.col("run_id") == again.extract.run_id) == dict.fromkeys(tables, 0)
    rejected = read_table(spark, lake, "silver/quarantine").where(F.col("run_id") == first.extract.run_id).count()
    first_bad = sum(c.quarantined_rows for c in first.transform.runs[0].entities)
    assert rejected == first_bad > 0  # (the sample API serves no bad record twice)
    assert sum(c.known_bad_records for c in again.transform.runs[0].entities) == first_bad
    silver_versions = {
        t: history_version(spark, lake, t) for t in TABLES if t.startswith("silver/") and t != "silver/quarantine"
    }
    assert silver_versions == {t: v for t, v in versions.items() if t in silver_versions}  # no MERGE committed
