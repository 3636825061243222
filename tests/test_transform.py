"""The transform job on landings built in the test: two runs end to end, idempotency, replay, broken landings."""

import dataclasses
import datetime as dt
import logging

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from conftest import make_config
from multiverse_etl.lake import Lake
from multiverse_etl.landing import write_manifest
from multiverse_etl.storage import open_storage
from multiverse_etl.transform import LandingReadError, run_transform
from multiverse_etl.transform.tables import TABLES, read_table
from support.delta_log import history_version
from support.lake import compare_gold_with_silver
from support.landed import T0, Page, Raw, apprenticeship, programme, project, write_run

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
R1, R2 = (f"{T0 + n * DAY:%Y%m%dT%H%M%SZ}-a0a0a0" for n in range(2))
NULL_ID = Raw(
    '{"id":null,"name":"n","programme_id":7,"modified_date":"2024-03-05T10:21:33","first_name":"a",'
    '"last_name":"b","email_address":"a@b.org"}'
)
ZOE = " Zoe\u0301 "  # decomposed, with spaces: silver holds "Zoé"


def land_first_run(storage) -> None:
    """The first of the two runs."""
    write_run(
        storage,
        T0,
        programmes=[Page([programme(7), programme(8)])],
        apprenticeships=[
            Page(
                [
                    apprenticeship(1, first_name=ZOE, email_address=" ADA@Example.ORG\t"),
                    apprenticeship(2, name="old copy"),
                    apprenticeship(3),
                    apprenticeship(4, modified_date="not a date"),
                ]
            ),
            Page([apprenticeship(2, name="shifted copy"), apprenticeship(5, programme_id=99), NULL_ID]),
        ],
        projects=[
            Page([project(10), project(11, status="graded")], parent=1),
            Page([], parent=2),
            Page([project(30, status="in_review")], parent=3),
            Page([project(40)], parent=4),
            Page([project(50, status="submitted")], parent=5),
        ],
    )


def land_two_runs(storage) -> None:
    """Two full runs a day apart; the expectations of each test say what every record is for."""
    land_first_run(storage)
    write_run(
        storage,
        T0 + DAY,
        programmes=[Page([programme(7)])],
        apprenticeships=[
            Page(
                [
                    apprenticeship(
                        1, first_name=ZOE, modified_date="2024-04-01T00:00:00", email_address="ada.new@example.org"
                    ),
                    apprenticeship(2, modified_date="2024-01-01T00:00:00", name="stale"),
                    apprenticeship(4, modified_date="not a date"),
                    apprenticeship(6, email_address="ada6-at-example.org"),
                ]
            )
        ],
        projects=[
            Page([project(10, status="graded")], parent=1),
            Page([], parent=2),
            Page([project(40)], parent=4),
            Page([project(60)], parent=6),
        ],
    )


def _persisted(spark) -> dict[int, str]:
    """The session's persisted RDDs by id, with their names (Delta names its cached table states
    "Delta Table State #<version> - <path>")."""
    held = spark.sparkContext._jsc.getPersistentRDDs()
    return {int(i): str(held.get(i).name() or "") for i in held.keySet().toArray()}


def _held_frames(spark) -> set[int]:
    return {i for i, name in _persisted(spark).items() if not name.startswith("Delta Table State")}


@pytest.fixture(scope="module")
def scenario(spark, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("transform-lake"))
    land_two_runs(open_storage(root))
    config = make_config(root)
    events, logger = _Events(), logging.getLogger("multiverse_etl")
    level = logger.level
    logger.addHandler(events)
    logger.setLevel(logging.INFO)
    SCENARIO_HELD["before"] = _held_frames(spark)
    try:
        result = run_transform(spark, config)
    finally:
        logger.removeHandler(events)
        logger.setLevel(level)
    SCENARIO_HELD["after"] = _held_frames(spark)
    return config, Lake.at(root), result, events.records


SCENARIO_HELD: dict[str, set[int]] = {}  # the frames the session held before and after the scenario's transform


class _Events(logging.Handler):
    """Every log record of the scenario's transform, as the JSON format would see it (its extra= fields)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def rows(spark, lake, table, where=None):
    """The table's rows (only those matching the SQL condition `where`, if given); callers select the columns."""
    frame = read_table(spark, lake, table)
    return frame.where(where) if where else frame


def ts(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_runs_load_into_silver_as_the_latest_live_state(spark, scenario):
    _, lake, result, _ = scenario
    assert result.loaded_run_ids == [R1, R2]
    r2_start = T0 + DAY
    columns = [
        "apprenticeship_id",
        "name",
        "programme_id",
        "modified_date",
        "first_name",
        "email_address",
        "email_is_valid",
        "modified_month",
        "is_deleted",
        "deleted_at",
        "deleted_by_run_id",
        "run_id",
    ]
    march = ts("2024-03-05T10:21:33")
    expected = spark.createDataFrame(
        [
            # updated by r2 (later modified_date); NFC and trimmed
            (
                1,
                "Data Fellowship – Acme 1",
                7,
                ts("2024-04-01T00:00:00"),
                "Zoé",
                "ada.new@example.org",
                True,
                dt.date(2024, 4, 1),
                False,
                None,
                None,
                R2,
            ),
            # r1 listed it twice (the later page wins); r2's version is older (modified_date): unchanged, but present
            (2, "shifted copy", 7, march, "Ada", "ada2@example.org", True, dt.date(2024, 3, 1), False, None, None, R1),
            # absent from r2's complete listing: marked deleted
            (
                3,
                "Data Fellowship – Acme 3",
                7,
                march,
                "Ada",
                "ada3@example.org",
                True,
                dt.date(2024, 3, 1),
                True,
                r2_start,
                R2,
                R1,
            ),
            (
                5,
                "Data Fellowship – Acme 5",
                99,
                march,
                "Ada",
                "ada5@example.org",
                True,
                dt.date(2024, 3, 1),
                True,
                r2_start,
                R2,
                R1,
            ),
            # an invalid e-mail is flagged, not quarantined
            (
                6,
                "Data Fellowship – Acme 6",
                7,
                march,
                "Ada",
                "ada6-at-example.org",
                False,
                dt.date(2024, 3, 1),
                False,
                None,
                None,
                R2,
            ),
        ],
        "apprenticeship_id bigint, name string, programme_id bigint, modified_date timestamp, first_name string, "
        "email_address string, email_is_valid boolean, modified_month date, is_deleted boolean, deleted_at timestamp, "
        "deleted_by_run_id string, run_id string",
    )
    # Column subsets against DDL-built frames (all nullable): the tables' own nullability is checked whole in
    # test_every_table_carries_its_declared_schema_nullability_included.
    assert_df_equality(
        rows(spark, lake, "silver/apprenticeships").select(*columns),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )

    expected_projects = spark.createDataFrame(
        [
            (1, 10, "Project 10", "graded", dt.date(2026, 3, 2), False, None, None, R2),
            (
                1,
                11,
                "Project 11",
                "graded",
                dt.date(2026, 3, 2),
                True,
                r2_start,
                R2,
                R1,
            ),  # its parent's listing lost it
            (
                4,
                40,
                "Project 40",
                "pending",
                dt.date(2026, 3, 2),
                False,
                None,
                None,
                R1,
            ),  # kept: the parent is quarantined
            (
                5,
                50,
                "Project 50",
                "submitted",
                dt.date(2026, 3, 2),
                True,
                r2_start,
                R2,
                R1,
            ),  # deleted with its apprenticeship
            (6, 60, "Project 60", "pending", dt.date(2026, 3, 3), False, None, None, R2),
        ],
        "apprenticeship_id bigint, project_id bigint, title string, status string, first_ingest_date date, "
        "is_deleted boolean, deleted_at timestamp, deleted_by_run_id string, run_id string",
    )
    actual_projects = rows(spark, lake, "silver/projects").select(*expected_projects.columns)
    assert_df_equality(actual_projects, expected_projects, ignore_row_order=True, ignore_nullable=True)

    programmes = rows(spark, lake, "silver/programmes").select("programme_id", "is_deleted", "deleted_by_run_id")
    assert_df_equality(
        programmes, spark.createDataFrame([(7, False, None), (8, True, R2)], programmes.schema), ignore_row_order=True
    )


def test_rejected_records_are_in_quarantine_with_their_reasons(spark, scenario):
    _, lake, _, _ = scenario
    actual = rows(spark, lake, "silver/quarantine").select(
        "entity", "run_id", "record_id", "page_index", "record_index", "parent_apprenticeship_id", "reasons"
    )
    expected = spark.createDataFrame(
        [
            ("apprenticeships", R1, "4", 0, 3, None, ["unparseable_date:modified_date"]),
            ("apprenticeships", R1, None, 1, 2, None, ["null_value:id"]),
            ("projects", R1, "30", 0, 0, 3, ["unknown_status:status"]),
            # r2 landed apprenticeship 4 exactly as r1 did: a known bad version, counted, not quarantined again
        ],
        actual.schema,
    )
    assert_df_equality(actual, expected, ignore_row_order=True)
    raw = rows(spark, lake, "silver/quarantine", where="record_id IS NULL").first().raw_record
    assert raw == NULL_ID.text


def test_gold_joins_live_rows_and_flags_what_is_unknown(spark, scenario):
    _, lake, result, _ = scenario
    apprenticeships = rows(spark, lake, "gold/apprenticeships").select(
        "apprenticeship_id",
        "programme_name",
        "programme_known",
        "projects_total",
        "projects_pending",
        "projects_graded",
        "has_projects",
    )
    assert_df_equality(
        apprenticeships,
        spark.createDataFrame(
            [
                (1, "Programme 7", True, 1, 0, 1, True),
                (2, "Programme 7", True, 0, 0, 0, False),
                (6, "Programme 7", True, 1, 1, 0, True),
            ],
            apprenticeships.schema,
        ),
        ignore_row_order=True,
    )
    projects = rows(spark, lake, "gold/apprenticeship_projects").select(
        "project_id", "apprenticeship_id", "status", "apprenticeship_known", "first_name", "programme_name"
    )
    assert_df_equality(
        projects,
        spark.createDataFrame(
            [
                (10, 1, "graded", True, "Zoé", "Programme 7"),
                (40, 4, "pending", False, None, None),
                (60, 6, "pending", True, "Ada", "Programme 7"),
            ],
            projects.schema,
        ),
        ignore_row_order=True,
    )
    assert (result.gold.gold_apprenticeships, result.gold.orphan_apprenticeships) == (3, 0)
    assert (result.gold.gold_apprenticeship_projects, result.gold.orphan_projects) == (3, 1)


def test_every_table_carries_its_declared_schema_nullability_included(spark, scenario):
    _, lake, _, _ = scenario
    for table, (schema, _) in TABLES.items():
        actual = read_table(spark, lake, table).schema
        assert actual == schema, f"{table}: {set(actual.fields) ^ set(schema.fields)}"


def test_every_run_is_audited_with_counts_that_reconcile(spark, scenario):
    _, lake, _, _ = scenario
    audit = rows(spark, lake, "_audit/runs")
    assert [(r.run_id, r.status, r.reconciled, list(r.mismatches)) for r in audit.orderBy("run_id").collect()] == [
        (R1, "loaded", True, []),
        (R2, "loaded", True, []),
    ]
    counts = audit.select("run_id", F.explode("entities").alias("e")).select(
        "run_id",
        "e.entity",
        "e.unchanged_records",
        "e.known_bad_records",
        "e.changed_records",
        "e.bronze_rows",
        "e.quarantined_rows",
        "e.duplicates_collapsed",
        "e.inserted",
        "e.updated",
        "e.unchanged",
        "e.deleted",
        "e.silver_live_rows",
    )
    assert_df_equality(
        counts,
        spark.createDataFrame(
            [
                (R1, "programmes", 0, 0, 2, 2, 0, 0, 2, 0, 0, 0, 2),
                (R1, "apprenticeships", 0, 0, 7, 7, 2, 1, 4, 0, 0, 0, 4),
                (R1, "projects", 0, 0, 5, 5, 1, 0, 4, 0, 0, 0, 4),
                # r2: programme 7 as r1 landed it; apprenticeship 4 the same bad version; project 40 unchanged
                (R2, "programmes", 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1),
                (R2, "apprenticeships", 0, 1, 3, 3, 0, 0, 1, 1, 1, 2, 3),
                (R2, "projects", 1, 0, 2, 2, 0, 0, 1, 1, 0, 2, 3),
            ],
            counts.schema,
        ),
        ignore_row_order=True,
    )
    reasons = {r.run_id: dict(r.quarantine_reasons) for r in audit.collect()}
    assert reasons[R1] == {
        "apprenticeships/unparseable_date:modified_date": 1,
        "apprenticeships/null_value:id": 1,
        "projects/unknown_status:status": 1,
    }


def test_each_step_logs_its_counts_as_structured_fields_for_json_logs(scenario):
    """The silver line of every entity and run carries the same counts as the audit row; the closing event the totals."""
    *_, events = scenario
    silver = {
        (r.landing_run_id, r.entity): (
            r.rows,
            r.quarantined,
            r.duplicates,
            r.inserted,
            r.updated,
            r.unchanged,
            r.deleted,
        )
        for r in events
        if getattr(r, "step", None) == "silver"
    }
    assert silver == {
        (R1, "programmes"): (2, 0, 0, 2, 0, 0, 0),
        (R1, "apprenticeships"): (7, 2, 1, 4, 0, 0, 0),
        (R1, "projects"): (5, 1, 0, 4, 0, 0, 0),
        (R2, "programmes"): (0, 0, 0, 0, 0, 0, 1),
        (R2, "apprenticeships"): (3, 0, 0, 1, 1, 1, 2),
        (R2, "projects"): (2, 0, 0, 1, 1, 0, 2),
    }
    classified = {
        (r.landing_run_id, r.entity): (r.rows, r.unchanged, r.known_bad, r.changed)
        for r in events
        if getattr(r, "step", None) == "classify"
    }
    assert classified == {
        (R1, "programmes"): (2, 0, 0, 2),
        (R1, "apprenticeships"): (7, 0, 0, 7),
        (R1, "projects"): (5, 0, 0, 5),
        (R2, "programmes"): (1, 1, 0, 0),
        (R2, "apprenticeships"): (4, 0, 1, 3),
        (R2, "projects"): (3, 1, 0, 2),
    }
    [last] = [r for r in events if r.getMessage().endswith("run(s) loaded")]
    assert (last.runs_loaded, last.landing_run_ids, last.bronze_rows, last.quarantined_rows, last.gold_mode) == (
        2,
        [R1, R2],
        19,
        3,
        "rebuilt",
    )
    assert last.duration_s > 0 and last.transform_job_id.startswith("transform-") and last.spark_jobs > 0


def test_bronze_keeps_each_landed_version_once_with_the_lineage_of_the_run_that_first_landed_it(spark, scenario):
    _, lake, _, _ = scenario
    actual = rows(spark, lake, "bronze/projects", where=f"run_id = '{R1}'").select(
        "page_index",
        "record_index",
        "parent_apprenticeship_id",
        "landing_file",
        F.get_json_object("raw_record", "$.id").cast("int").alias("id"),
    )
    part = f"raw/projects/ingest_date=2026-03-02/run_id={R1}/part-00000.jsonl.gz"
    assert_df_equality(
        actual,
        spark.createDataFrame(
            [
                (0, 0, 1, part, 10),
                (0, 1, 1, part, 11),
                (0, 0, 3, part, 30),
                (0, 0, 4, part, 40),
                (0, 0, 5, part, 50),
            ],
            actual.schema,
        ),
        ignore_row_order=True,
    )


def _snapshot(spark, lake):
    """Every silver and gold table's rows, and every table's Delta version."""
    contents = {t: read_table(spark, lake, t).collect() for t in TABLES if t.startswith(("silver/", "gold/"))}
    versions = {t: history_version(spark, lake, t) for t in TABLES}
    return contents, versions


def test_a_second_transform_changes_nothing_and_a_replayed_old_run_changes_no_content(spark, scenario):
    """A run whose audit row is missing is loaded again: exactly the state a crash after gold, before the audit, leaves."""
    config, lake, _, _ = scenario
    contents, versions = _snapshot(spark, lake)
    again = run_transform(spark, config)
    assert again.runs == [] and not again.gold_written
    assert _snapshot(spark, lake)[1] == versions  # not one commit anywhere

    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, lake.path("_audit/runs")).delete(f"run_id = '{R1}'")
    replay = run_transform(spark, config)
    assert replay.loaded_run_ids == [R1]
    assert [(c.entity, c.inserted, c.updated, c.deleted) for c in replay.runs[0].entities] == [
        ("programmes", 0, 0, 0),
        ("apprenticeships", 0, 0, 0),
        ("projects", 0, 0, 0),
    ]
    after, _ = _snapshot(spark, lake)
    for table, before_rows in contents.items():
        assert sorted(map(tuple, after[table]), key=repr) == sorted(map(tuple, before_rows), key=repr), table
    bronze_r1 = rows(spark, lake, "bronze/apprenticeships", where=f"run_id = '{R1}'").count()
    audit_r1 = rows(spark, lake, "_audit/runs", where=f"run_id = '{R1}'").collect()
    assert bronze_r1 == 7 and [r.status for r in audit_r1] == ["loaded"]


def test_an_unreadable_landing_file_loads_nothing_of_its_run(spark, tmp_path):
    storage = open_storage(str(tmp_path))
    bad = write_run(
        storage,
        T0,
        apprenticeships=[Page([apprenticeship(i) for i in range(1, 300)])],
        projects=[Page([project(1)], parent=2)],
    )
    key = bad.keys["apprenticeships"][0]
    storage.put(key, storage.get(key)[:200])
    with pytest.raises(LandingReadError, match=f"run {bad.run_id}: landing file .*{key}.* cannot be read"):
        run_transform(spark, make_config(str(tmp_path)))
    lake = Lake.at(str(tmp_path))
    for table in ("bronze/apprenticeships", "bronze/projects", "bronze/programmes", "_audit/runs"):
        assert rows(spark, lake, table).count() == 0, table


def test_a_landing_that_does_not_match_its_manifest_is_taken_back_out_of_bronze(spark, tmp_path):
    storage = open_storage(str(tmp_path))
    landed = write_run(storage, T0, apprenticeships=[Page([apprenticeship(1), apprenticeship(2)])], commit=False)
    promised = dataclasses.replace(landed.manifest.entity("apprenticeships"), pages=2)  # one page landed, two promised
    write_manifest(
        storage,
        dataclasses.replace(landed.manifest, entities={**landed.manifest.entities, "apprenticeships": promised}),
    )
    with pytest.raises(LandingReadError, match="apprenticeships: 1 pages read, the manifest says 2"):
        run_transform(spark, make_config(str(tmp_path)))
    lake = Lake.at(str(tmp_path))
    assert rows(spark, lake, "bronze/apprenticeships").count() == 0
    assert rows(spark, lake, "_audit/runs").count() == 0


def test_counts_that_do_not_add_up_fail_the_job_and_leave_a_failed_audit_row(spark, tmp_path, monkeypatch):
    import multiverse_etl.transform.merge as transform_merge
    from multiverse_etl.transform import ReconciliationError

    landed = write_run(open_storage(str(tmp_path)), T0, programmes=[Page([programme(7), programme(8)])])
    real_append = transform_merge.append_rows
    monkeypatch.setattr(
        transform_merge, "append_rows", lambda *a, **k: real_append(*a, **k) - 1
    )  # a row "lost" on the way
    with pytest.raises(ReconciliationError, match="programmes: planned inserts 2 != MERGE rows inserted 1"):
        run_transform(spark, make_config(str(tmp_path)))
    audit = rows(spark, Lake.at(str(tmp_path)), "_audit/runs").collect()
    assert [(r.run_id, r.status, r.reconciled, list(r.mismatches)) for r in audit] == [
        (landed.run_id, "failed", False, ["programmes: planned inserts 2 != MERGE rows inserted 1"])
    ]


@pytest.mark.parametrize("failure", ["does not reconcile", "raises after its MERGEs"])
def test_gold_follows_the_silver_changes_of_a_run_that_fails_after_its_merges(spark, tmp_path, monkeypatch, failure):
    """A run that fails after its MERGEs (it stays pending) has still changed silver: gold, refreshed after the job's
    earlier runs, must include its changes too (merged with them when known, else rebuilt)."""
    import multiverse_etl.transform.run as transform_run
    from multiverse_etl.transform import ReconciliationError

    config = make_config(str(tmp_path / "lake"), transform={"gold_merge_max_share": 1.0})  # gold merged, not rebuilt
    storage = open_storage(config.lake.root)
    land_first_run(storage)
    run_transform(spark, config)
    partial = {"apprenticeships": False, "projects": False, "programmes": False}
    later = dict(mode="incremental", complete_listing=partial)
    write_run(
        storage,
        T0 + DAY,
        apprenticeships=[Page([apprenticeship(3, name="second", modified_date="2024-05-01T00:00:00")])],
        **later,
    )
    failing = write_run(
        storage,
        T0 + 2 * DAY,
        apprenticeships=[Page([apprenticeship(1, name="third", modified_date="2024-06-01T00:00:00")])],
        **later,
    )
    real_load_run = transform_run.load_run

    def load_run(job, plan, previous=None):
        report, changes = real_load_run(job, plan, previous)
        if plan.run_id == failing.run_id and failure == "raises after its MERGEs":
            raise RuntimeError("the audit could not be written")
        if plan.run_id == failing.run_id:
            report.mismatches.append("a count that does not add up")
        return report, changes

    monkeypatch.setattr(transform_run, "load_run", load_run)
    expected = ReconciliationError if failure == "does not reconcile" else RuntimeError
    with pytest.raises(expected, match="a count that does not add up|the audit could not be written"):
        run_transform(spark, config)
    names = {
        r.apprenticeship_id: r.name for r in rows(spark, Lake.at(config.lake.root), "gold/apprenticeships").collect()
    }
    assert names[1] == "third" and names[3] == "second"
    comparison = compare_gold_with_silver(spark, config)
    assert comparison.ok, comparison.describe()


def test_a_small_load_runs_without_adaptive_execution_or_broadcasts_on_one_shuffle_partition_per_100k_rows():
    from multiverse_etl.transform.run import small_landing_settings

    adaptive, shuffle = "spark.sql.adaptive.enabled", "spark.sql.shuffle.partitions"
    small = {adaptive: "false", "spark.sql.autoBroadcastJoinThreshold": "-1"}
    assert small_landing_settings(7_726, 8) == {**small, shuffle: "1"}
    assert small_landing_settings(0, 8) == {**small, shuffle: "1"}
    assert small_landing_settings(100_001, 8) == {**small, shuffle: "2"}
    assert small_landing_settings(200_000, 1) == {**small, shuffle: "1"}  # never more than configured
    assert small_landing_settings(200_001, 8) == {}  # a large load: the session's own settings
    # A later small run interprets what whole-stage code generation leaves out; a first load compiles it.
    interpreted = {"spark.sql.codegen.factoryMode": "NO_CODEGEN"}
    assert small_landing_settings(15_452, 8, first_load=False) == {**small, shuffle: "1", **interpreted}
    assert small_landing_settings(15_452, 8, first_load=True) == {**small, shuffle: "1"}
    assert small_landing_settings(50_001, 8, first_load=False) == {**small, shuffle: "1"}  # its rows cost more
    assert small_landing_settings(200_001, 8, first_load=False) == {}


def test_a_transform_puts_the_sessions_settings_back(spark, tmp_path, monkeypatch):
    import multiverse_etl.transform.run as transform_run

    factory, seen, load_run = "spark.sql.codegen.factoryMode", [], transform_run.load_run

    def loading(job, *args, **kwargs):  # what the session says while a run loads
        seen.append(job.spark.conf.get(factory, "FALLBACK"))
        return load_run(job, *args, **kwargs)

    monkeypatch.setattr(transform_run, "load_run", loading)
    config = make_config(str(tmp_path / "lake"))
    write_run(open_storage(config.lake.root), T0, programmes=[Page([programme(1)])])
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    spark.conf.set("spark.sql.adaptive.enabled", "true")
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "1234567")
    materialize = "spark.databricks.delta.merge.materializeSource"  # "none" for silver's MERGEs only
    spark.conf.set(materialize, "all")
    try:
        run_transform(spark, config)
        assert seen == ["FALLBACK"]  # a first load compiles its expressions
        write_run(open_storage(config.lake.root), T0 + DAY, programmes=[Page([programme(1, name="renamed")])])
        run_transform(spark, config)
        assert seen == ["FALLBACK", "NO_CODEGEN"]  # a later small run interprets them
        assert spark.conf.get(factory) == "FALLBACK"
        assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
        assert spark.conf.get("spark.sql.adaptive.enabled") == "true"
        assert spark.conf.get("spark.sql.autoBroadcastJoinThreshold") == "1234567"
        assert spark.conf.get(materialize) == "all"
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", "false")
        spark.conf.unset("spark.sql.autoBroadcastJoinThreshold")
        spark.conf.unset(materialize)


def test_a_job_leaves_no_frame_held(scenario):
    """Two runs (a first load, then MERGEs): every frame the job held or persisted is released by its end."""
    assert SCENARIO_HELD["after"] == SCENARIO_HELD["before"]


def test_a_first_load_builds_gold_from_the_rows_it_appended_not_from_the_tables_read_back(spark, tmp_path):
    config = make_config(str(tmp_path / "lake"))
    land_first_run(open_storage(config.lake.root))
    held = _held_frames(spark)
    first = run_transform(spark, config)
    assert first.gold_mode == "rebuilt" and _held_frames(spark) == held
    read_back = [name for name in _persisted(spark).values() if f"{config.lake.root}/silver/" in name]
    assert read_back == []  # Delta never listed a silver table's files: nothing read them
    comparison = compare_gold_with_silver(spark, config)  # the oracle's joins of silver as the tables hold it
    assert comparison.ok, comparison.describe()
    gold = read_table(spark, Lake.at(config.lake.root), "gold/apprenticeships")
    assert first.gold.gold_apprenticeships == gold.count() == 4
