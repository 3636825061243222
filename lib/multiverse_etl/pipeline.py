"""The whole pipeline: extract, then transform, under one hold of the lake's writer lock.

A second pipeline started on the same lake while this one runs is refused at once (it names the
holder) instead of interleaving with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Callable, ContextManager, Optional

from pyspark.sql import SparkSession

from .config import Config
from .extract import ExtractResult, run_extract
from .ids import job_run_id
from .lake import Lake
from .lock import check_still_held, current_lock, lake_lock
from .signals import note_lake_state
from .storage import Storage, open_storage
from .transform import TransformResult, run_transform

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PipelineResult:
    extract: ExtractResult
    transform: TransformResult
    spark: SparkSession


def run_pipeline(
    config: Config,
    spark_factory: Callable[[], SparkSession],
    mode: Optional[str] = None,
    resume_run_id: Optional[str] = None,
    storage: Optional[Storage] = None,
    rebuild_gold: bool = False,
) -> PipelineResult:
    """Land the API (or finish `resume_run_id`), then load every committed run not loaded yet."""
    storage = storage or open_storage(config.lake.root, config.s3)
    owner = job_run_id("pipeline")
    held = current_lock()  # the job's entry point holds it already; a library caller gets it here
    locking: ContextManager[object] = (
        contextlib.nullcontext(held) if held else lake_lock(storage, owner=owner, lease_s=config.lake.lock_lease_s)
    )
    with locking:
        extracted = run_extract(config, mode=mode, resume_run_id=resume_run_id, storage=storage)
        note_lake_state(
            f"extract run {extracted.run_id} is committed; the transform did not finish (each Delta commit is "
            "all-or-nothing): the next transform or pipeline loads what is pending"
        )
        check_still_held()  # fenced: a holder that lost the lake transforms nothing
        spark = spark_factory()  # started after the extraction: a failed login costs no JVM
        transformed = run_transform(spark, config, storage=storage, take_lock=False, rebuild_gold=rebuild_gold)
    log.info("pipeline %s done: run %s extracted and loaded", owner, extracted.run_id)
    return PipelineResult(extracted, transformed, spark)


def show_gold(spark: SparkSession, lake: Lake, rows: int) -> str:
    """A few gold apprenticeships as a text table (for the demo's last screen)."""
    frame = (
        spark.read.format("delta")
        .load(lake.path("gold/apprenticeships"))
        .select(
            "apprenticeship_id",
            "first_name",
            "last_name",
            "email_address",
            "programme_name",
            "projects_total",
            "projects_graded",
        )
        .orderBy("apprenticeship_id")
        .limit(rows)
    )
    return frame._jdf.showString(rows, 24, False)
