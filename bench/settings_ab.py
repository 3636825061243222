"""Two sets of Spark settings compared in one warm session: a first load and an incremental run per lake, the
variants interleaved (their order reversed every pair), each run's wall time, CPU seconds and Spark jobs.

For a machine others share: the load moves wall-clock times run to run, much less the CPU seconds of the driver
JVM and this process (read from /proc), and one session takes JIT warm-up out of the comparison. A variant's
settings win over the small-landing settings a run applies (`run.small_landing_settings`), so the defaults a run
would override can be compared too. Prints a table; nothing is asserted.

Usage: .venv/bin/python bench/settings_ab.py --scale 2000 --pairs 4 \\
           --a spark.sql.autoBroadcastJoinThreshold=10485760 --b spark.sql.autoBroadcastJoinThreshold=-1
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from multiverse_etl.config import load_config
from multiverse_etl.logs import setup_logging
from transform import synthesise_landing  # bench/transform.py: this script's folder is first on sys.path


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its children (the driver JVM in local mode)."""
    ticks = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    with open(f"/proc/{me}/task/{me}/children") as children:
        pids = [me, *(int(pid) for pid in children.read().split())]
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def settings(pairs: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in pairs)


def interleaved_runs(
    spark,
    config,
    scale: int,
    pairs: int,
    use: Callable[[str], None],
    warm_up: Sequence[str],
    describe: Mapping[str, str],
) -> None:
    """Variants A and B (`use(name)` switches to one) run a first load and an incremental run on a lake of their
    own, `pairs` times, their order reversed every pair, after a warm-up round of each variant in `warm_up`; prints
    each run and a table of medians (wall, CPU of this process and the driver JVM, Spark jobs)."""
    from multiverse_etl.transform import run_transform

    work = Path(tempfile.mkdtemp(prefix="ab-"))

    def lake(name: str):
        return dataclasses.replace(config, lake=dataclasses.replace(config.lake, root=str(work / name)))

    try:
        for name in warm_up:  # the session's first runs compile what every later run reuses
            use(name)
            for generation in (0, 1):
                synthesise_landing(str(work / f"warm-up-{name}"), scale, generation=generation)
                run_transform(spark, lake(f"warm-up-{name}"))
        runs: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
        for pair in range(pairs):
            for name in ("A", "B") if pair % 2 == 0 else ("B", "A"):
                use(name)
                for generation, label in ((0, "first load"), (1, "incremental")):
                    synthesise_landing(str(work / f"{name}{pair}"), scale, generation=generation)
                    cpu, start = cpu_seconds(), time.monotonic()
                    result = run_transform(spark, lake(f"{name}{pair}"))
                    seconds, cpu = time.monotonic() - start, cpu_seconds() - cpu
                    runs.setdefault((name, label), []).append((seconds, cpu, result.spark_jobs))
                    print(f"pair {pair} {name} {label}: {seconds:.1f} s, {cpu:.1f} CPU s, {result.spark_jobs} jobs")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'variant':<8}{'run':<13}{'median s':>9}{'median CPU s':>14}  jobs  variant")
    for (name, label), values in sorted(runs.items()):
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        jobs = sorted({v[2] for v in values})
        print(f"{name:<8}{label:<13}{wall:>9.1f}{cpu:>14.1f}  {jobs}  {describe[name]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--a", action="append", default=[], help="variant A: a Spark setting key=value (repeatable)")
    parser.add_argument("--b", action="append", default=[], help="variant B: a Spark setting key=value (repeatable)")
    args = parser.parse_args()
    setup_logging("WARNING")
    from multiverse_etl.spark import build_spark
    from multiverse_etl.transform import run as run_module

    variants = {"A": settings(args.a), "B": settings(args.b)}
    keys = set(variants["A"]) | set(variants["B"])
    config = load_config("local", environ={})
    spark = build_spark(config, "settings-ab")
    defaults = {key: spark.conf.get(key, None) for key in keys}
    small_landing = run_module.small_landing_settings

    def use(name: str) -> None:
        for key in keys:
            value = variants[name].get(key, defaults[key])
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
        run_module.small_landing_settings = lambda records, partitions, **kw: {  # type: ignore[assignment]
            k: v for k, v in small_landing(records, partitions, **kw).items() if k not in variants[name]
        }

    describe = {name: str(variants[name] or "(session defaults)") for name in variants}
    interleaved_runs(spark, config, args.scale, args.pairs, use, warm_up=("A",), describe=describe)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
