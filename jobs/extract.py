"""spark-submit entry point: export the API into raw landing files (no Spark needed; plain Python locally)."""

import sys

from multiverse_etl.cli import base_parser, load_job_config, main_for
from multiverse_etl.extract import add_extract_arguments, extract_overrides


def body(args) -> int:
    from multiverse_etl.extract import run_extract

    config = load_job_config(args, extract_overrides(args))
    result = run_extract(config, mode=args.mode, resume_run_id=args.resume)
    print(f"extract committed run {result.run_id}: {result.manifest_key}", flush=True)
    return 0


if __name__ == "__main__":
    parser = add_extract_arguments(base_parser("extract", "Export the Multiverse API into raw JSON landing files."))
    sys.exit(main_for("extract", parser, body))
