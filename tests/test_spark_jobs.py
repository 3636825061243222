"""The Spark job counter: the number the transform logs and audits per run."""

from __future__ import annotations

import threading

from multiverse_etl.spark_jobs import JobCounter


def test_counts_the_jobs_started_from_any_thread_and_none_for_lazy_work(spark):
    idle = JobCounter(spark)
    frame = spark.range(10).selectExpr("id * 2 AS x")  # lazy: no job
    assert idle.jobs == 0

    counter = JobCounter(spark)
    assert len(frame.collect()) == 10
    worker = threading.Thread(target=lambda: spark.range(5).collect())
    worker.start()
    worker.join()
    assert counter.jobs == 2  # a collect() of a plan without a shuffle is one job; one on each thread
