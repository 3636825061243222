"""How many Spark jobs a piece of work started: the transform's fixed cost is mostly small jobs.

Job ids are handed out in sequence by the DAG scheduler, so the jobs a piece of work started are
the next id after it minus the next id before it, whichever thread started them and however few of
them Spark's UI still retains. The count is logged at the end of a transform, kept in its
`_audit/runs` rows and printed by `bench/transform.py`.
"""

from __future__ import annotations

from typing import Optional

from pyspark.sql import SparkSession


def next_job_id(spark: SparkSession) -> Optional[int]:
    """The id the next Spark job will get; None where this Spark does not expose it (never a failure)."""
    try:
        counter = spark.sparkContext._jsc.sc().dagScheduler().nextJobId()  # an AtomicInteger (py4j may unwrap it)
        return int(counter if isinstance(counter, int) else counter.get())
    except Exception:  # noqa: BLE001 - an internal API: without it the count is unknown
        return None


class JobCounter:
    """The Spark jobs started since it was made: `counter = JobCounter(spark)`, later `counter.jobs`."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.first = next_job_id(spark)

    @property
    def jobs(self) -> Optional[int]:
        last = next_job_id(self.spark)
        return None if self.first is None or last is None else last - self.first
