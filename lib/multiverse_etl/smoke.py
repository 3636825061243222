"""Smoke job: write a tiny Delta table partitioned by date and read it back (proves the storage path)."""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

log = logging.getLogger(__name__)

SMOKE_SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType(), False),
        T.StructField("name", T.StringType(), True),
        T.StructField("event_date", T.DateType(), False),
    ]
)


def smoke_rows() -> list[tuple]:
    return [
        (1, "Ada", dt.date(2024, 3, 5)),
        (2, "Zoë", dt.date(2024, 3, 5)),
        (3, "Łukasz", dt.date(2024, 3, 6)),
    ]


def run_smoke(spark: SparkSession, table_path: str) -> DataFrame:
    """Overwrite the smoke table at `table_path` and return what Delta reads back."""
    frame = spark.createDataFrame(smoke_rows(), SMOKE_SCHEMA)
    frame.write.format("delta").mode("overwrite").partitionBy("event_date").save(table_path)
    back = spark.read.format("delta").load(table_path)
    log.info("smoke table %s: %d rows read back", table_path, back.count())
    return back
