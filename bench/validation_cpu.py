"""Benchmark: `validate_records`' executor CPU per record, per entity, net of reading the bronze rows.

The measure of `bench/transform.py`'s `validation_cpu`, alone and repeated: a landing is synthesised at
`--scale` apprenticeships (`synthesise_landing`), exploded to bronze rows as the transform's bronze step does
and written once as Parquet in `--work-dir` (kept there and reused: the same rows for a "before" and an
"after" run); then, `--repeats` times per entity, the executor CPU seconds of reading those rows, and of
reading and validating them (a `noop` write each, `_cpu_seconds`). Prints each repeat and the medians.

    .venv/bin/python bench/validation_cpu.py --scale 200000
    PYTHONPATH=<other checkout>/lib .venv/bin/python bench/validation_cpu.py   # that checkout's library
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
from pathlib import Path

from multiverse_etl.config import load_config
from multiverse_etl.logs import setup_logging
from transform import _cpu_seconds, synthesise_landing  # bench/transform.py: this script's folder is first on sys.path


def bronze_rows(spark, work: Path, scale: int) -> dict[str, str]:
    """Parquet folders of the bronze rows of apprenticeships and projects at `scale` (written once, then reused)."""
    from multiverse_etl.transform.read import explode_pages, read_landing_pages

    out = {e: str(work / f"bronze-{scale}" / e) for e in ("apprenticeships", "projects")}
    if all((Path(p) / "_SUCCESS").exists() for p in out.values()):
        return out
    landing = work / f"landing-{scale}"
    shutil.rmtree(landing, ignore_errors=True)
    manifest = synthesise_landing(str(landing), scale)
    for entity, path in out.items():
        keys = tuple(p.key for p in manifest.entity(entity).parts)
        pages = read_landing_pages(spark, str(landing), keys, "s3a")
        pages.transform(explode_pages(manifest.run_id)).write.mode("overwrite").parquet(path)
    shutil.rmtree(landing, ignore_errors=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=200_000, help="apprenticeships (projects: several each)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-dir", default="/tmp/bench-validation-cpu", help="bronze rows are kept and reused here")
    parser.add_argument("--driver-memory", default="4g")
    args = parser.parse_args()
    setup_logging("WARNING")

    import multiverse_etl
    from multiverse_etl.entities import APPRENTICESHIPS, PROJECTS
    from multiverse_etl.spark import build_spark
    from multiverse_etl.transform.clean import validate_records

    base = load_config("local", environ={})
    config = dataclasses.replace(
        base, spark=dataclasses.replace(base.spark, conf={**base.spark.conf, "spark.driver.memory": args.driver_memory})
    )
    spark = build_spark(config, "bench-validation-cpu")
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        paths = bronze_rows(spark, work, args.scale)
        for spec in (APPRENTICESHIPS, PROJECTS):
            bronze = spark.read.parquet(paths[spec.name])
            records = bronze.count()
            # One unmeasured round: class loading, the JIT and code generation are paid by neither side.
            _cpu_seconds(spark, bronze.transform(validate_records(spec)))
            for repeat in range(1, args.repeats + 1):
                read_s = _cpu_seconds(spark, bronze)
                validate_s = _cpu_seconds(spark, bronze.transform(validate_records(spec)))
                rows.append((spec.name, repeat, records, read_s, validate_s, (validate_s - read_s) / records * 1e6))
                print(f"{spec.name} repeat {repeat}: {rows[-1][-1]:.2f} µs/record", flush=True)
    finally:
        spark.stop()
    print(f"\nlibrary: {Path(multiverse_etl.__file__).parent}; scale {args.scale:,} apprenticeships")
    print(
        f"{'entity':>16} {'repeat':>6} {'records':>10} {'read CPU s':>10} {'read+validate CPU s':>19} {'µs/record':>10}"
    )
    for name, repeat, records, read_s, validate_s, per_record in rows:
        print(f"{name:>16} {repeat:>6} {records:>10,} {read_s:>10.1f} {validate_s:>19.1f} {per_record:>10.2f}")
    for name in dict.fromkeys(r[0] for r in rows):
        print(f"{name:>16} median {statistics.median(r[5] for r in rows if r[0] == name):.2f} µs/record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
