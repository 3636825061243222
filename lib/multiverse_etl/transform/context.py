"""What every step of a transform job shares: the session, the lake, the thread pool, the job's id and key."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pyspark.sql import SparkSession

from ..lake import Lake


@dataclass(frozen=True)
class Job:
    """One transform job. Steps read it; none of them changes it."""

    spark: SparkSession
    lake: Lake  # its storage holds the Delta logs that versions and commit metrics are read from (delta_log.py)
    job_id: str
    pool: ThreadPoolExecutor  # the job's threads: Spark jobs of independent entities run side by side
    pseudonymisation_key: Optional[str] = None
    drift_policy: str = "warn"  # transform.on_unknown_fields (drift.py)
    gold_merge_max_share: float = 1.0  # transform.gold_merge_max_share (gold_refresh.py)


def results_or_raise(futures: dict[str, Future], cleanup: Optional[Callable[[Any], None]] = None) -> dict[str, Any]:
    """Every future's result by key, once all are done; on any failure, `cleanup` the successes and raise the first."""
    results, failure = {}, None
    for key, future in futures.items():
        try:
            results[key] = future.result()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others finished
            failure = failure or exc
    if failure is not None:
        for value in results.values():
            if cleanup is not None:
                cleanup(value)
        raise failure
    return results
