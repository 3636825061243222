"""The jobs' command lines and bodies, importable, so spark-submit (jobs/*.py) and Glue (jobs/glue_job.py)
run exactly the same code. Each body only parses, loads config and calls the library.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import uuid
from typing import Callable, Iterator, Optional, Sequence

from .cli import base_parser, load_job_config, main_for

DESCRIPTIONS = {
    "extract": "Export the Multiverse API into raw JSON landing files (no Spark needed).",
    "transform": "Load committed landing runs into bronze, silver and gold Delta tables, reconciled and audited.",
    "pipeline": "Extract, then transform, holding the lake's writer lock throughout.",
    "maintain": "Compact recent partitions (OPTIMIZE, Z-ORDER) and VACUUM old files.",
    "smoke": "Write a tiny date-partitioned Delta table to the lake and read it back.",
}


def _extract_parser() -> argparse.ArgumentParser:
    from .extract import add_extract_arguments

    return add_extract_arguments(base_parser("extract", DESCRIPTIONS["extract"]))


def _extract(args: argparse.Namespace) -> int:
    from .extract import extract_overrides, run_extract
    from .storage import open_lake

    # No lake lock: extraction runs only add their own run's files (distinct run ids) and the
    # watermark only moves forward, so a lone extract can run beside a transform.
    config = load_job_config(args, extract_overrides(args))
    storage = open_lake(config.lake.root, config.s3)  # a lake that cannot be written fails before the API is called
    result = run_extract(config, mode=args.mode, resume_run_id=args.resume, storage=storage)
    print(f"extract committed run {result.run_id}: {result.manifest_key}", flush=True)
    return 0


REBUILD_GOLD_HELP = "rebuild gold whole from silver (by default only the rows of what silver changed are merged)"


def _transform_parser() -> argparse.ArgumentParser:
    parser = base_parser("transform", DESCRIPTIONS["transform"])
    parser.add_argument("--break-lock", action="store_true", help="remove a crashed writer's lake lock first")
    parser.add_argument("--rebuild-gold", action="store_true", help=REBUILD_GOLD_HELP)
    return parser


def _transform(args: argparse.Namespace) -> int:
    from .spark import build_spark
    from .storage import open_lake
    from .transform import run_transform

    config = load_job_config(args)
    storage = open_lake(config.lake.root, config.s3)
    # The lock first: a lake busy with another writer is refused before a Spark session is started.
    with _writer_lock(args, config, storage, "transform"):
        spark = build_spark(config, "multiverse-etl-transform")
        result = run_transform(spark, config, storage=storage, take_lock=False, rebuild_gold=args.rebuild_gold)
    for line in result.summary_lines():
        print(line, flush=True)
    return 0


def _pipeline_parser() -> argparse.ArgumentParser:
    from .extract import add_extract_arguments

    parser = add_extract_arguments(base_parser("pipeline", DESCRIPTIONS["pipeline"]))
    parser.add_argument(
        "--show", type=int, default=0, metavar="N", help="print N rows of gold/apprenticeships at the end"
    )
    parser.add_argument("--break-lock", action="store_true", help="remove a crashed writer's lake lock first")
    parser.add_argument("--rebuild-gold", action="store_true", help=REBUILD_GOLD_HELP)
    return parser


def _pipeline(args: argparse.Namespace) -> int:
    from .extract import extract_overrides
    from .pipeline import run_pipeline, show_gold
    from .spark import build_spark
    from .storage import open_lake

    config = load_job_config(args, extract_overrides(args))
    storage = open_lake(config.lake.root, config.s3)
    with _writer_lock(args, config, storage, "pipeline"):
        result = run_pipeline(
            config,
            lambda: build_spark(config, "multiverse-etl-pipeline"),
            mode=args.mode,
            resume_run_id=args.resume,
            storage=storage,
            rebuild_gold=args.rebuild_gold,
        )
    print(f"extract committed run {result.extract.run_id}: {result.extract.manifest_key}", flush=True)
    for line in result.transform.summary_lines():
        print(line, flush=True)
    if args.show:
        print(show_gold(result.spark, config, args.show), flush=True)
    return 0


def _maintain_parser() -> argparse.ArgumentParser:
    parser = base_parser("maintain", DESCRIPTIONS["maintain"])
    parser.add_argument("--days", type=int, help="optimize partitions of the last N days (maintain.optimize_days)")
    parser.add_argument(
        "--retention-hours", type=int, help="VACUUM retention (maintain.vacuum_retention_hours, min 168)"
    )
    parser.add_argument("--force", action="store_true", help="allow a VACUUM retention below 7 days")
    parser.add_argument("--no-vacuum", action="store_true", help="only OPTIMIZE")
    parser.add_argument("--table", action="append", help="only this table (e.g. silver/projects); repeatable")
    parser.add_argument("--break-lock", action="store_true", help="remove a crashed writer's lake lock first")
    return parser


def _maintain(args: argparse.Namespace) -> int:
    from .maintain import check_retention, format_report, maintain_tables
    from .spark import build_spark
    from .storage import open_lake

    config = load_job_config(args)
    retention = args.retention_hours if args.retention_hours is not None else config.maintain.vacuum_retention_hours
    check_retention(retention, args.force)  # refuse before starting Spark
    storage = open_lake(config.lake.root, config.s3)
    with _writer_lock(args, config, storage, "maintain"):
        spark = build_spark(config, "multiverse-etl-maintain")
        reports = maintain_tables(
            spark,
            storage,
            config.lake.root,
            config.s3.spark_scheme,
            optimize_days=args.days if args.days is not None else config.maintain.optimize_days,
            retention_hours=retention,
            force=args.force,
            tables=args.table or None,
            vacuum=not args.no_vacuum,
        )
    print(format_report(reports), flush=True)
    return 0


def _smoke_parser() -> argparse.ArgumentParser:
    return base_parser("smoke", DESCRIPTIONS["smoke"])


def _smoke(args: argparse.Namespace) -> int:
    from .smoke import run_smoke
    from .spark import build_spark
    from .storage import open_lake, spark_path

    config = load_job_config(args)
    open_lake(config.lake.root, config.s3)  # a lake that cannot be written fails before Spark starts
    spark = build_spark(config, "multiverse-etl-smoke")
    rows = (
        run_smoke(spark, spark_path(config.lake.root, "_smoke/events", config.s3.spark_scheme)).orderBy("id").collect()
    )
    for row in rows:
        print(f"smoke row: {row.id} {row.name} {row.event_date}", flush=True)
    return 0 if len(rows) == 3 else 1


@contextlib.contextmanager
def _writer_lock(args: argparse.Namespace, config, storage, job: str) -> Iterator[object]:
    """The one place every writing job takes (and releases) the lake's lock: --break-lock first, the configured
    lease, a heartbeat; released on success, failure and SIGTERM/SIGINT alike (cli.run_job says which)."""
    from .lock import break_lock, lake_lock
    from .signals import note_lake_state

    if job != "pipeline":  # the pipeline says where it is itself (before or after its extract's commit)
        note_lake_state(f"{job} stopped between Delta commits (each is all-or-nothing); its next run finishes the work")
    if getattr(args, "break_lock", False):
        break_lock(storage)
    owner = f"{job}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    with lake_lock(storage, owner=owner, lease_s=config.lake.lock_lease_s) as held:
        yield held


JOBS: dict[str, tuple[Callable[[], argparse.ArgumentParser], Callable[[argparse.Namespace], int]]] = {
    "extract": (_extract_parser, _extract),
    "transform": (_transform_parser, _transform),
    "pipeline": (_pipeline_parser, _pipeline),
    "maintain": (_maintain_parser, _maintain),
    "smoke": (_smoke_parser, _smoke),
}


def main(job: str, argv: Optional[Sequence[str]] = None) -> int:
    """Run `job` with `argv` (sys.argv[1:] when None); the process exit code."""
    if job not in JOBS:
        print(f"unknown job '{job}'; jobs: {', '.join(JOBS)}", file=sys.stderr)
        return 2
    make_parser, body = JOBS[job]
    return main_for(job, make_parser(), body, None if argv is None else list(argv))
