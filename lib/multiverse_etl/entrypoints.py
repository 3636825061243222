"""The one registry of jobs (`JOBS`): each job's name, help, flags, body and what it needs.

spark-submit.sh (submit.py), the spark-submit entry points (jobs/*.py), Glue (jobs/glue_job.py, glue.py) and the
README's job table all read it, so a job is added or changed here only. Each body only loads what it needs and
calls the library.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

from .cli import base_parser, load_job_config, main_for
from .config import Config
from .errors import EXIT_USAGE
from .ids import job_run_id
from .storage import Storage

REBUILD_GOLD_HELP = "rebuild gold whole from silver (by default only the rows of what silver changed are merged)"
BREAK_LOCK_HELP = "remove a crashed writer's lake lock first"


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def _no_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Job:
    """One job. `body(args, config)` returns the exit code; `takes_writer_lock` jobs write Delta tables, so they hold
    the lake's writer lock (and take --break-lock); `plain_python_locally` jobs need no Spark on a local master."""

    name: str
    help: str
    body: Callable[[argparse.Namespace, Config], int]
    add_arguments: Callable[[argparse.ArgumentParser], object] = _no_arguments
    config_overrides: Callable[[argparse.Namespace], dict[str, Any]] = _no_overrides
    takes_writer_lock: bool = False
    plain_python_locally: bool = False

    def parser(self, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
        """The job's whole command line: the common flags (cli.base_parser), --break-lock if it locks, its own."""
        parser = base_parser(self.name, self.help, parser_class)
        if self.takes_writer_lock:
            parser.add_argument("--break-lock", action="store_true", help=BREAK_LOCK_HELP)
        self.add_arguments(parser)
        return parser

    def config(self, args: argparse.Namespace) -> Config:
        """The config this job runs with: --env's file, the environment, then --set and the job's own flags."""
        return load_job_config(args, self.config_overrides(args))


def _extract_arguments(parser: argparse.ArgumentParser) -> None:
    from .extract.args import add_extract_arguments

    add_extract_arguments(parser)


def _extract_overrides(args: argparse.Namespace) -> dict[str, Any]:
    from .extract.args import extract_overrides

    return extract_overrides(args)


def _extract(args: argparse.Namespace, config: Config) -> int:
    from .extract import run_extract
    from .storage import open_lake

    # No lake lock: extraction runs only add their own run's files (distinct run ids) and the
    # watermark only moves forward, so a lone extract can run beside a transform.
    storage = open_lake(config.lake.root, config.s3)  # a lake that cannot be written fails before the API is called
    result = run_extract(config, mode=args.mode, resume_run_id=args.resume, storage=storage)
    print(f"extract committed run {result.run_id}: {result.manifest_key}", flush=True)
    return 0


def _transform_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rebuild-gold", action="store_true", help=REBUILD_GOLD_HELP)


def _transform(args: argparse.Namespace, config: Config) -> int:
    from .spark import build_spark
    from .storage import open_lake
    from .transform import run_transform

    storage = open_lake(config.lake.root, config.s3)
    # The lock first: a lake busy with another writer is refused before a Spark session is started.
    with _writer_lock(args, config, storage, "transform"):
        spark = build_spark(config, "multiverse-etl-transform")
        result = run_transform(spark, config, storage=storage, take_lock=False, rebuild_gold=args.rebuild_gold)
    for line in result.summary_lines():
        print(line, flush=True)
    return 0


def _pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    _extract_arguments(parser)
    _transform_arguments(parser)
    parser.add_argument(
        "--show", type=int, default=0, metavar="N", help="print N rows of gold/apprenticeships at the end"
    )


def _pipeline(args: argparse.Namespace, config: Config) -> int:
    from .lake import Lake
    from .pipeline import run_pipeline, show_gold
    from .spark import build_spark
    from .storage import open_lake

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
        print(show_gold(result.spark, Lake.of(config, storage), args.show), flush=True)
    return 0


def _maintain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, help="optimize partitions of the last N days (maintain.optimize_days)")
    parser.add_argument(
        "--retention-hours", type=int, help="VACUUM retention (maintain.vacuum_retention_hours, min 168)"
    )
    parser.add_argument("--force", action="store_true", help="allow a VACUUM retention below 7 days")
    parser.add_argument("--no-vacuum", action="store_true", help="only OPTIMIZE")
    parser.add_argument("--table", action="append", help="only this table (e.g. silver/projects); repeatable")


def _maintain(args: argparse.Namespace, config: Config) -> int:
    from .lake import Lake
    from .maintain import check_retention, format_report, maintain_tables
    from .spark import build_spark
    from .storage import open_lake

    retention = args.retention_hours if args.retention_hours is not None else config.maintain.vacuum_retention_hours
    check_retention(retention, args.force)  # refuse before starting Spark
    storage = open_lake(config.lake.root, config.s3)
    with _writer_lock(args, config, storage, "maintain"):
        spark = build_spark(config, "multiverse-etl-maintain")
        reports = maintain_tables(
            spark,
            Lake.of(config, storage),
            optimize_days=args.days if args.days is not None else config.maintain.optimize_days,
            retention_hours=retention,
            force=args.force,
            tables=args.table or None,
            vacuum=not args.no_vacuum,
        )
    print(format_report(reports), flush=True)
    return 0


def _smoke(args: argparse.Namespace, config: Config) -> int:
    from .lake import Lake
    from .smoke import run_smoke
    from .spark import build_spark
    from .storage import open_lake

    lake = Lake.of(config, open_lake(config.lake.root, config.s3))  # an unwritable lake fails before Spark starts
    spark = build_spark(config, "multiverse-etl-smoke")
    rows = run_smoke(spark, lake.path("_smoke/events")).orderBy("id").collect()
    for row in rows:
        print(f"smoke row: {row.id} {row.name} {row.event_date}", flush=True)
    return 0 if len(rows) == 3 else 1


@contextlib.contextmanager
def _writer_lock(args: argparse.Namespace, config: Config, storage: Storage, job: str) -> Iterator[object]:
    """The one place every writing job takes (and releases) the lake's lock: --break-lock first, the configured
    lease, a heartbeat; released on success, failure and SIGTERM/SIGINT alike (cli.run_job says which)."""
    from .lock import break_lock, lake_lock
    from .signals import note_lake_state

    if job != "pipeline":  # the pipeline says where it is itself (before or after its extract's commit)
        note_lake_state(f"{job} stopped between Delta commits (each is all-or-nothing); its next run finishes the work")
    if args.break_lock:
        break_lock(storage)
    with lake_lock(storage, owner=job_run_id(job), lease_s=config.lake.lock_lease_s) as held:
        yield held


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "extract",
            "land every API page as raw JSON in the lake (plain Python locally, no Spark)",
            _extract,
            _extract_arguments,
            _extract_overrides,
            plain_python_locally=True,
        ),
        Job(
            "transform",
            "load committed landing runs into bronze, silver and gold Delta tables, reconciled and audited",
            _transform,
            _transform_arguments,
            takes_writer_lock=True,
        ),
        Job(
            "pipeline",
            "extract, then transform, holding the lake's writer lock throughout",
            _pipeline,
            _pipeline_arguments,
            _extract_overrides,
            takes_writer_lock=True,
        ),
        Job(
            "maintain",
            "compact recent partitions (OPTIMIZE, Z-ORDER) and VACUUM old files",
            _maintain,
            _maintain_arguments,
            takes_writer_lock=True,
        ),
        Job("smoke", "write a tiny date-partitioned Delta table to the lake and read it back", _smoke),
    )
}


def main(name: str, argv: Optional[Sequence[str]] = None) -> int:
    """Run the job `name` with `argv` (sys.argv[1:] when None); the process exit code."""
    job = JOBS.get(name)
    if job is None:
        print(f"unknown job '{name}'; jobs: {', '.join(JOBS)}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    return main_for(name, job.parser(), lambda args: job.body(args, job.config(args)), argv)
