"""The storage path end to end: a date-partitioned Delta table in a folder and on local S3."""

import datetime as dt

from chispa import assert_df_equality

from multiverse_etl.smoke import SMOKE_SCHEMA, run_smoke, smoke_rows
from multiverse_etl.storage import open_storage, spark_path


def test_smoke_table_in_a_local_folder(spark, tmp_path):
    table = tmp_path / "smoke"
    back = run_smoke(spark, str(table))
    assert_df_equality(
        back, spark.createDataFrame(smoke_rows(), SMOKE_SCHEMA), ignore_row_order=True, ignore_nullable=True
    )
    assert (table / "_delta_log" / "00000000000000000000.json").is_file()
    assert sorted(p.name for p in table.glob("event_date=*")) == ["event_date=2024-03-05", "event_date=2024-03-06"]


def test_smoke_table_on_local_s3(spark, s3_config):
    root = s3_config.lake.root + "/smoke-test"
    back = run_smoke(spark, spark_path(root, "events", "s3a"))
    assert sorted(r.name for r in back.collect()) == sorted(r[1] for r in smoke_rows())
    keys = [o.key for o in open_storage(root, s3_config.s3).list("events/")]
    assert "events/_delta_log/00000000000000000000.json" in keys
    assert any(k.startswith("events/event_date=2024-03-06/") and k.endswith(".parquet") for k in keys)


def test_rerun_overwrites_instead_of_duplicating(spark, tmp_path):
    table = str(tmp_path / "smoke")
    run_smoke(spark, table)
    back = run_smoke(spark, table)
    assert back.count() == 3
    assert back.filter(back.event_date == dt.date(2024, 3, 5)).count() == 2
