"""The extract flags, shared by jobs/extract.py and jobs/pipeline.py."""

from __future__ import annotations

import argparse
from typing import Any


def add_extract_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--api-url, --mode, --resume (on top of cli.base_parser's --env, --lake-root, --set)."""
    parser.add_argument("--api-url", help="override api.url, e.g. http://127.0.0.1:8000")
    parser.add_argument("--mode", choices=["full", "incremental"], help="override extract.mode")
    parser.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="finish an interrupted run (its id is in the failure message and under _state/extract_runs/)",
    )
    return parser


def extract_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides from the extract flags (for cli.load_job_config)."""
    return {"api.url": getattr(args, "api_url", None), "extract.mode": getattr(args, "mode", None)}
