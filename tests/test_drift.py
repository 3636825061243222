"""Schema drift: unknown fields and contract fields no record carried are counted, warned about, audited,
shown in the summary, and (on_unknown_fields: fail) stop the run with nothing loaded."""

import collections
import json
import logging

import pytest
import requests

from conftest import make_config
from multiverse_etl.lake import Lake
from multiverse_etl.storage import open_storage
from multiverse_etl.transform import run_transform
from multiverse_etl.transform.drift import (
    MISSING,
    UNKNOWN,
    DriftField,
    SchemaDriftError,
    apply_policy,
    field_presence,
    observed_presence,
    presence_metrics,
    schema_drift,
)
from multiverse_etl.transform.tables import read_table
from sample_api.server import serve_in_background
from support.lake import row_counts
from support.landed import T0, Page, apprenticeship, programme, project, write_run

CONTRACT = ["id", "name", "email"]


def test_unknown_fields_are_counted_and_contract_fields_in_no_record_are_missing():
    drift = schema_drift("things", {"id": 3, "name": 1, "cohort": 2, "aardvark": 3}, CONTRACT, records=3)
    assert drift == [
        DriftField("things", "aardvark", UNKNOWN, 3),
        DriftField("things", "cohort", UNKNOWN, 2),
        DriftField("things", "email", MISSING, 0),
    ]
    assert schema_drift("things", {}, CONTRACT, records=0) == []  # an empty run is missing nothing
    assert schema_drift("things", {"id": 1, "name": 1, "email": 1}, CONTRACT, records=1) == []


def test_warn_logs_one_line_fail_raises_only_for_unknown_fields_ignore_is_silent(caplog):
    unknown, missing = DriftField("things", "cohort", UNKNOWN, 2), DriftField("things", "email", MISSING, 0)
    with caplog.at_level(logging.WARNING, logger="multiverse_etl.transform.drift"):
        apply_policy("r1", [unknown, missing], "warn")
        apply_policy("r2", [unknown], "ignore")
        apply_policy("r3", [missing], "fail")  # a missing field is a warning even under 'fail'
    assert [r.getMessage() for r in caplog.records] == [
        "run r1: schema drift: things: unknown cohort (2 records), missing email",
        "run r3: schema drift: things: missing email",
    ]
    with pytest.raises(SchemaDriftError, match=r"run r4: .*\(things: unknown cohort \(2 records\)\).*'fail'"):
        apply_policy("r4", [unknown, missing], "fail")


@pytest.mark.parametrize("ansi", ["false", "true"])
def test_field_presence_counts_records_per_top_level_key_and_skips_non_objects(spark, ansi):
    spark.conf.set("spark.sql.ansi.enabled", ansi)
    try:
        frame = spark.createDataFrame(
            [('{"id":1,"x":{"y":2}}',), ('{"id":2,"cohort":null}',), ("42",), ("not json",), ("[1,2]",), (None,)],
            "raw_record string",
        )
        assert field_presence(frame) == {"id": 2, "x": 1, "cohort": 1}
    finally:
        spark.conf.unset("spark.sql.ansi.enabled")


PRESENCE_TEXTS = [  # the API's compact form, and ways a record's text can differ from it
    '{"id":1,"name":"Ada","email":"a@x.io"}',
    '{"id":-0,"name":"","email":"Ünïcode ✓"}',
    '{"id":1,"name":"Ada","email":"a@x.io","cohort":"A"}',  # an unknown key
    '{"id":1,"name":"Ada"}',  # a contract field missing
    '{"name":"Ada","id":1,"email":"a@x.io"}',  # another order
    '{"id": 1,"name":"Ada","email":"a@x.io"}',  # a space
    '{"id":1,"name":"a\\",\\"cohort\\":\\"b","email":"x"}',  # escaped quotes that look like a key
    '{"id":1.5,"name":"Ada","email":"a@x.io"}',  # not an integer
    '{"id":"1","name":"Ada","email":"a@x.io"}',  # a string where an integer is promised
    '{"id":007,"name":"Ada","email":"a@x.io"}',  # not JSON: a leading zero (no keys)
    '{"id":1,"name":"A\tda","email":"a@x.io"}',  # a raw control character (Spark's tokeniser allows it)
    '{"id":1,"name":null,"email":"a@x.io"}',
    '{"id":1,"name":{"email":"x","extra":1},"email":"a@x.io"}',  # nested keys are not top-level
    "[1,2]",
    "42",
    "not json",
]


def python_key_counts(texts: list) -> dict:
    """Records per top-level key, by Python's own JSON parser: the reference (raw control characters in strings
    allowed, as Spark's JSON tokeniser allows them)."""
    counts: collections.Counter = collections.Counter()
    for text in texts:
        try:
            value = json.loads(text, strict=False)
        except (TypeError, ValueError):
            continue
        if isinstance(value, dict):
            counts.update(value.keys())
    return dict(counts)


@pytest.mark.parametrize("ansi", ["false", "true"])
def test_observed_presence_counts_every_top_level_key_as_pythons_json_does(spark, ansi):
    spark.conf.set("spark.sql.ansi.enabled", ansi)
    try:
        texts = PRESENCE_TEXTS * 2 + [None]
        frame = spark.createDataFrame([(t,) for t in texts], "raw_record string")
        observed = frame.agg(*presence_metrics(CONTRACT)).first().asDict()
        present = observed_presence(observed, CONTRACT, frame)
        assert {name: n for name, n in present.items() if n} == python_key_counts(texts)
    finally:
        spark.conf.unset("spark.sql.ansi.enabled")


def land_drifting_run(root: str):
    """Apprenticeships: 2 of 3 carry 'cohort'; none carries 'email_address' (a contract field)."""
    records = [
        {
            **{k: v for k, v in apprenticeship(i).items() if k != "email_address"},
            **({"cohort": "2026-A"} if i < 3 else {}),
        }
        for i in (1, 2, 3)
    ]
    return write_run(
        open_storage(root),
        T0,
        programmes=[Page([programme(7)])],
        apprenticeships=[Page(records)],
        projects=[Page([project(10)], parent=1)],
    )


def test_warn_loads_the_run_and_audits_and_shows_the_drift(spark, tmp_path, caplog):
    run = land_drifting_run(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="multiverse_etl.transform.drift"):
        result = run_transform(spark, make_config(str(tmp_path)))
    assert result.loaded_run_ids == [run.run_id]
    expected = f"{run.run_id}: schema drift: apprenticeships: unknown cohort (2 records), missing email_address"
    assert [r.getMessage() for r in caplog.records] == ["run " + expected]
    assert (
        f"{run.run_id:<24} schema drift: apprenticeships: unknown cohort (2 records), missing email_address"
        in result.summary_lines()
    )
    lake = Lake.at(str(tmp_path))
    audit = read_table(spark, lake, "_audit/runs").collect()
    assert [(d.entity, d.field, d.kind, d.records) for d in audit[0].schema_drift] == [
        ("apprenticeships", "cohort", "unknown", 2),
        ("apprenticeships", "email_address", "missing", 0),
    ]
    raw = [r.raw_record for r in read_table(spark, lake, "bronze/apprenticeships").orderBy("raw_record").collect()]
    assert sum('"cohort":"2026-A"' in text for text in raw) == 2  # bronze keeps the unknown field


def test_fail_stops_the_run_before_silver_and_leaves_it_pending(spark, tmp_path):
    run = land_drifting_run(str(tmp_path))
    config = make_config(str(tmp_path), transform={"on_unknown_fields": "fail"})
    with pytest.raises(SchemaDriftError, match=f"run {run.run_id}: .*unknown cohort"):
        run_transform(spark, config)
    lake = Lake.at(str(tmp_path))
    tables = ("bronze/apprenticeships", "silver/apprenticeships", "_audit/runs")
    assert row_counts(spark, lake, tables) == dict.fromkeys(tables, 0)


def test_the_replica_serves_an_extra_field_on_every_record_of_its_entity():
    with serve_in_background(scale=5, seed=1, extra_fields=("apprenticeships.cohort",)) as api:
        token = requests.post(api.url + "/login", data={"username": "multiverse", "password": "mult1v3r53"}).json()
        headers = {"Authorization": "Bearer " + token["access_token"]}
        records = requests.get(api.url + "/apprenticeships", params={"page_size": 10}, headers=headers).json()["data"]
        projects = requests.get(f"{api.url}/apprenticeships/{records[0]['id']}/projects", headers=headers).json()[
            "data"
        ]
    assert len(records) == 5 and all(r["cohort"] == "extra-cohort" for r in records)
    assert all("cohort" not in p for p in projects)
    with pytest.raises(ValueError, match="extra field must be"):
        serve_in_background(extra_fields=("nothing",)).__enter__()
