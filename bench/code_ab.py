"""Two versions of the transform's code compared in one warm session: a first load and an incremental run per lake,
the variants interleaved (their order reversed every pair), each run's wall time, CPU seconds and Spark jobs.

Variant A runs the functions named by `--function` as a git revision has them (`--rev`, default HEAD), variant B as
the checkout has them: each named function's code object is swapped in place (its module's globals stay the
checkout's), so both variants share one JVM, its JIT and its caches, and the comparison is not two processes
started at different moments of a shared machine's load. A function whose old code needs a name the checkout no
longer has fails on its first run. Prints a table; nothing is asserted.

Usage: .venv/bin/python bench/code_ab.py --scale 2000 --pairs 4 \\
           --function multiverse_etl.transform.prepare:_prepare_changed
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import types
from pathlib import Path

from multiverse_etl.config import load_config
from multiverse_etl.logs import setup_logging
from settings_ab import interleaved_runs  # bench/settings_ab.py: this script's folder is first on sys.path

ROOT = Path(__file__).resolve().parent.parent


def old_code(module: types.ModuleType, function: str, rev: str) -> types.CodeType:
    """The code object of `function` as `module`'s source at git revision `rev` defines it."""
    path = Path(module.__file__ or "").resolve().relative_to(ROOT)
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    compiled = compile(source, f"{rev}:{path}", "exec")
    for const in compiled.co_consts:
        if isinstance(const, types.CodeType) and const.co_name == function:
            return const
    raise SystemExit(f"{function} is not a top-level function of {path} at {rev}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--rev", default="HEAD", help="variant A's git revision (B: the checkout)")
    parser.add_argument(
        "--function", action="append", required=True, help="module:function whose code differs (repeatable)"
    )
    args = parser.parse_args()
    setup_logging("WARNING")
    from multiverse_etl.spark import build_spark

    swaps = []
    for item in args.function:
        module_name, function = item.split(":", 1)
        live = getattr(importlib.import_module(module_name), function)
        swaps.append(
            (live, {"A": old_code(importlib.import_module(module_name), function, args.rev), "B": live.__code__})
        )

    def use(name: str) -> None:
        for live, codes in swaps:
            live.__code__ = codes[name]

    config = load_config("local", environ={})
    spark = build_spark(config, "code-ab")
    try:
        describe = {"A": args.rev, "B": "checkout"}
        interleaved_runs(spark, config, args.scale, args.pairs, use, warm_up=("A", "B"), describe=describe)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
