"""End to end on the sample API with faults on: extract then transform, compared with the ground truth.

The expected lake is computed from `sample_api.dump.ground_truth` in plain Python
(`transform_support.expected_lake`), independently of the Spark code: silver's live rows, gold
and the quarantine's reasons must equal it exactly (no missing, extra or duplicate id).
"""

from collections import Counter

from pyspark.sql import functions as F

from multiverse_etl.pipeline import run_pipeline
from multiverse_etl.transform import run_transform
from multiverse_etl.transform.tables import TABLES, Lake, last_commit, read_table
from sample_api.dump import ground_truth
from sample_api.server import serve_in_background
from transform_support import expected_lake

from conftest import make_config

SCALE, SEED, CORRUPT = 150, 11, 0.04  # 150 apprenticeships: two deleted, eight modified, three added per generation
S3_SCALE = 80
FAULTS = dict(fault_rate=0.05, drop_rate=0.02, token_ttl=60, max_page_size=40, fault_seed=3)
API = {"page_size": 50, "concurrency": 8, "backoff_base_s": 0.01, "backoff_max_s": 0.2, "max_attempts": 12}
TS = "yyyy-MM-dd'T'HH:mm:ss"


def pipeline(spark, config, generation, mode, scale=SCALE):
    with serve_in_background(scale=scale, seed=SEED, generation=generation, corrupt_rate=CORRUPT, **FAULTS) as api:
        configured = make_config(config.lake.root, env=config.env, api={"url": api.url, **API}, s3=vars(config.s3))
        return run_pipeline(configured, lambda: spark, mode=mode)


def lake_state(spark, lake):
    """silver's live rows, gold and quarantine reasons in the shape of `ExpectedLake`, with every duplicate visible."""
    def live(table):
        return read_table(spark, lake, table).where(~F.col("is_deleted"))

    apprenticeships = [(r[0], tuple(r[1:])) for r in live("silver/apprenticeships").select(
        "apprenticeship_id", "name", "programme_id", F.date_format("modified_date", TS), "first_name", "last_name",
        "email_address", "email_is_valid").collect()]
    projects = [((r[0], r[1]), tuple(r[2:])) for r in live("silver/projects").select(
        "apprenticeship_id", "project_id", "title", "description", "status").collect()]
    programmes = [(r[0], tuple(r[1:])) for r in live("silver/programmes").select(
        "programme_id", "name", "duration", "description").collect()]
    gold_a = [tuple(r) for r in read_table(spark, lake, "gold/apprenticeships")
              .withColumn("modified_date", F.date_format("modified_date", TS))
              .withColumn("modified_month", F.col("modified_month").cast("string")).collect()]
    gold_p = [tuple(r) for r in read_table(spark, lake, "gold/apprenticeship_projects")
              .withColumn("modified_date", F.date_format("modified_date", TS))
              .withColumn("modified_month", F.col("modified_month").cast("string")).collect()]
    return apprenticeships, projects, programmes, gold_a, gold_p


def assert_lake_equals_truth(spark, lake, generation, scale=SCALE):
    expected = expected_lake(ground_truth(scale, SEED, generation, CORRUPT))
    apprenticeships, projects, programmes, gold_a, gold_p = lake_state(spark, lake)
    for name, rows, want in (("apprenticeships", apprenticeships, expected.apprenticeships),
                             ("projects", projects, expected.projects), ("programmes", programmes, expected.programmes)):
        keys = Counter(key for key, _ in rows)
        assert [k for k, n in keys.items() if n > 1] == [], f"duplicate {name} in silver"
        assert sorted(set(want) - set(keys)) == [], f"{name} missing from silver"
        assert sorted(set(keys) - set(want)) == [], f"{name} in silver but not in the source"
        assert {k: v for k, v in rows} == want, f"silver {name} differ from the cleaned ground truth"
    assert len(gold_a) == len(set(gold_a)) and set(gold_a) == expected.gold_apprenticeships
    assert len(gold_p) == len(set(gold_p)) and set(gold_p) == expected.gold_projects
    return expected


def test_folder_lake_generations_0_1_2_equal_the_ground_truth(spark, tmp_path):
    """A full run, then two incremental runs (projects of every apprenticeship: deletions are seen)."""
    config = make_config(str(tmp_path / "lake"))
    lake = Lake(config.lake.root)
    first = pipeline(spark, config, 0, "full")
    expected = assert_lake_equals_truth(spark, lake, 0)
    (report,) = first.transform.runs
    assert report.mismatches == []
    quarantined = Counter()
    for row in read_table(spark, lake, "silver/quarantine").select("entity", F.explode("reasons").alias("r")).collect():
        quarantined[(row.entity, row.r)] += 1
    assert quarantined == expected.quarantine and sum(quarantined.values()) > 0

    pipeline(spark, config, 1, "incremental")
    last = pipeline(spark, config, 2, "incremental")
    assert last.transform.loaded_run_ids == [last.extract.run_id]
    assert last.extract.manifest["mode"] == "incremental"
    assert_lake_equals_truth(spark, lake, 2)
    deleted = {r.apprenticeship_id for r in read_table(spark, lake, "silver/apprenticeships").where("is_deleted").collect()}
    gen0 = {a["id"] for a in ground_truth(SCALE, SEED, 0)["apprenticeships"]}
    gen2 = {a["id"] for a in ground_truth(SCALE, SEED, 2)["apprenticeships"]}
    assert deleted and deleted <= gen0 - gen2  # the generator deleted them; the lake marked them


def test_s3_lake_equals_the_ground_truth_and_a_second_pipeline_changes_no_content(spark, s3_config):
    import uuid

    config = make_config(f"{s3_config.lake.root}/pipeline-{uuid.uuid4().hex[:8]}", env="local-s3", s3=vars(s3_config.s3))
    lake = Lake(config.lake.root, config.s3.spark_scheme)
    first = pipeline(spark, config, 0, "full", S3_SCALE)
    assert_lake_equals_truth(spark, lake, 0, S3_SCALE)
    current_state = ("silver/apprenticeships", "silver/projects", "silver/programmes", "gold/apprenticeships",
                     "gold/apprenticeship_projects")
    before = {t: sorted(map(tuple, read_table(spark, lake, t).collect()), key=repr) for t in current_state}
    versions = {t: last_commit(spark, lake, t)["version"] for t in TABLES}

    assert run_transform(spark, config).runs == []  # transform again: nothing to load, not one commit
    assert {t: last_commit(spark, lake, t)["version"] for t in TABLES} == versions

    again = pipeline(spark, config, 0, "full", S3_SCALE)  # the whole pipeline again on an unchanged source
    counts = {c.entity: (c.inserted, c.updated, c.deleted) for c in again.transform.runs[0].entities}
    assert counts == {"programmes": (0, 0, 0), "apprenticeships": (0, 0, 0), "projects": (0, 0, 0)}
    after = {t: sorted(map(tuple, read_table(spark, lake, t).collect()), key=repr) for t in before}
    assert after == before
    # bronze, quarantine and the audit are per-run logs: the second run rejected exactly what the first did
    rejected = {r: Counter((q.entity, q.raw_record, tuple(q.reasons)) for q in
                           read_table(spark, lake, "silver/quarantine").where(F.col("run_id") == r).collect())
                for r in (first.extract.run_id, again.extract.run_id)}
    assert rejected[first.extract.run_id] == rejected[again.extract.run_id] and rejected[first.extract.run_id]
    silver_versions = {t: last_commit(spark, lake, t)["version"] for t in TABLES if t.startswith("silver/")
                       and t != "silver/quarantine"}
    assert silver_versions == {t: v for t, v in versions.items() if t in silver_versions}  # no MERGE committed
