"""What every job's command line shares: --env, --lake-root, --set, --log-level, and clean failures."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Optional

from .config import Config, ConfigError, load_config
from .logs import FORMATS, set_format, setup_logging, start_job_context
from .set_flags import parse_set_flags
from .signals import Stopped, announce_driver, lake_state, stop_on_signals

log = logging.getLogger("multiverse_etl")


def base_parser(job: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"spark-submit.sh {job}", description=description)
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
    """Run a job body; known failures end with one clear line and a non-zero exit, not a stack trace."""
    try:
        with stop_on_signals():
            return body()
    except Stopped as exc:  # the lock is released by now (every `finally` ran)
        log.error("%s: stopped by %s (exit %d); lake: %s", job, exc.signal_name, exc.exit_code, lake_state())
        return exc.exit_code
    except ConfigError as exc:
        log.error("%s: bad configuration: %s", job, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return 2
    except KeyboardInterrupt:  # Ctrl-C once a SparkContext holds SIGINT (it cancels Spark's jobs, then raises this)
        log.error("%s: interrupted (exit 130); lake: %s", job, lake_state())
        return 130
    except Exception as exc:  # the last line a user sees names the failure
        if getattr(exc, "user_facing", False):  # one line; the traceback only with --log-level DEBUG
            log.error("%s failed: %s", job, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            return 1
        log.exception("%s failed: %s", job, exc)
        return 1


def main_for(job: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int], argv=None) -> int:
    announce_driver()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format or "text")
    start_job_context(job)
    return run_job(job, lambda: body(args))


def exit_with(code: int) -> None:
    sys.exit(code)
