"""Instructions per request of the whole extractor (callgrind), a CPU figure that does not move with machine load.

Not a test. `run_extract` (local config, adaptive) runs under `valgrind --tool=callgrind` against the replica (a
separate process, not counted) at two scales; the difference of the user-space instructions divided by the
difference of the requests is what one more request costs, start-up and the first pages cancelled out::

    PYTHONPATH=lib .venv/bin/python bench/extract_instructions.py                 # scales 1000 and 4000
    PYTHONPATH=/tmp/before/lib .venv/bin/python bench/extract_instructions.py     # another lib/, same figure

Each run takes a minute or two (callgrind is ~50x slower than the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from extract import ROOT, start_server  # noqa: E402 - the bench folder's own module


def worker(url: str, lake: str) -> None:
    """One extraction, run inside valgrind; prints its request count."""
    from multiverse_etl.config import load_config
    from multiverse_etl.extract import run_extract
    from multiverse_etl.logs import setup_logging

    setup_logging("WARNING")
    config = load_config("local", {"lake.root": lake, "api.url": url, "extract.progress_interval_s": 3600})
    manifest = run_extract(config, mode="full").manifest.to_json()
    print(json.dumps({"requests": manifest["requests"]}))


def instructions(scale: int, lake: str) -> tuple[int, int]:
    """(instructions, requests) of one extraction of `scale` apprenticeships under callgrind."""
    proc, url = start_server(scale, 0)
    out = os.path.join(lake, f"callgrind.{scale}")
    try:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                url,
                os.path.join(lake, f"lake-{scale}"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    finally:
        proc.kill()
        proc.wait()
    match = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not match:
        raise RuntimeError(done.stderr[-3000:])
    return int(match.group(1)), json.loads(done.stdout.strip().splitlines()[-1])["requests"]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", type=int, nargs=2, default=[1000, 4000])
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as lake:
        (small, small_requests), (large, large_requests) = (instructions(scale, lake) for scale in args.scales)
    per_request = (large - small) / (large_requests - small_requests)
    print(
        f"{small_requests:,} requests: {small:,} instructions; {large_requests:,}: {large:,}; "
        f"{per_request / 1000:.1f}k instructions a request"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
