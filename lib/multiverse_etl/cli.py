"""What every job's command line shares: --env, --lake-root, --set, --log-level, and clean failures."""

from __future__ import annotations

import argparse
import logging
from typing import Callable, Optional, Sequence

from .config import Config, load_config
from .errors import EXIT_FAILED, EtlError
from .logs import FORMATS, set_format, setup_logging, start_job_context
from .set_flags import parse_set_flags
from .signals import Stopped, announce_driver, lake_state, stop_on_signals

log = logging.getLogger("multiverse_etl")


def base_parser(
    job: str, description: str, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser
) -> argparse.ArgumentParser:
    """The flags every job takes (a job adds its own: entrypoints.Job.parser)."""
    parser = parser_class(prog=f"spark-submit.sh {job}", description=description)
    parser.add_argument("--env", required=True, help="config name in conf/ (local, local-s3, emr, glue) or a YAML path")
    parser.add_argument("--lake-root", help="override lake.root: a folder or s3://bucket/prefix")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override any config key, e.g. api.page_size=500"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="DEBUG also shows Spark's and Ivy's own output on the console",
    )
    parser.add_argument(
        "--log-format",
        choices=list(FORMATS),
        help="text, or json (one object per event); default: the config's logging.format",
    )
    return parser


def load_job_config(args: argparse.Namespace, extra: Optional[dict] = None) -> Config:
    overrides = parse_set_flags(args.set)
    if args.lake_root:
        overrides["lake.root"] = args.lake_root
    overrides.update({k: v for k, v in (extra or {}).items() if v is not None})
    config = load_config(args.env, overrides)
    if not getattr(args, "log_format", None):
        set_format(config.logging.format)  # the flag beats the config
    return config


def run_job(job: str, body: Callable[[], int]) -> int:
    """Run a job body; its exit code. An `EtlError` ends with one line naming the failure (its traceback only with
    --log-level DEBUG) and its own exit code; anything else is a bug: its traceback is always shown."""
    try:
        with stop_on_signals():
            return body()
    except Stopped as exc:  # the lock is released by now (every `finally` ran)
        log.error("%s: stopped by %s (exit %d); lake: %s", job, exc.signal_name, exc.exit_code, lake_state())
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C once a SparkContext holds SIGINT (it cancels Spark's jobs, then raises this)
        log.error("%s: interrupted (exit 130); lake: %s", job, lake_state())
        return 130
    except EtlError as exc:
        log.error("%s failed: %s", job, exc.user_message(), exc_info=log.isEnabledFor(logging.DEBUG))
        return exc.exit_code
    except Exception as exc:  # a bug: the traceback is what a maintainer needs
        log.exception("%s failed: %s", job, exc)
        return EXIT_FAILED


def main_for(
    job: str,
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int],
    argv: Optional[Sequence[str]] = None,
) -> int:
    """A job's process: its argv parsed (once), logging set up, then the body under `run_job`."""
    announce_driver()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format or "text")
    start_job_context(job)
    return run_job(job, lambda: body(args))
