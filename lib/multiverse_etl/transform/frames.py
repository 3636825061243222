"""Frames a run computes once and keeps, held apart from the Delta tables they were read from.

Spark re-caches every cached plan that reads a path when something is written to that path, and the next use
computes it again from the table as it is *now*: a classification persisted before the run's quarantine append
and silver MERGEs was computed again after each of them (the whole landing read and joined again, 16 Spark jobs
for one quarantine append at 2,000 apprenticeships), and against rows the run itself had just written. A local
checkpoint keeps the rows, not the plan: computed once, from the table versions the run classified against.
"""

from __future__ import annotations

from typing import Optional

from pyspark.sql import DataFrame


def hold(frame: DataFrame) -> DataFrame:
    """`frame` computed now (one Spark job; its observations are reported) and kept in memory and on local disk."""
    return frame.localCheckpoint(eager=True)


def release(frame: Optional[DataFrame]) -> None:
    """Free what `hold` (or `persist`) kept; the frame must not be used after."""
    if frame is None:
        return
    plan = frame._jdf.queryExecution().analyzed()
    if plan.getClass().getSimpleName() == "LogicalRDD":  # a checkpoint: its blocks belong to its RDD
        plan.rdd().unpersist(False)
    else:
        frame.unpersist()
