"""Resolve the Delta and S3A jars for the installed pyspark into the project's Ivy cache, once.

Starting a SparkSession with spark.jars.packages makes Spark's Ivy fetch them from Maven
Central; later starts find them in the cache and download nothing.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from multiverse_etl.spark import default_packages, spark_line  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ivy-dir", default=".cache/ivy")
    args = parser.parse_args()
    ivy = Path(args.ivy_dir).resolve()
    packages = default_packages()
    marker = ivy / f".resolved-{spark_line()}-{'_'.join(p.replace(':', '-') for p in packages)}"
    if marker.exists():
        print(f"jars for Spark {spark_line()} already in {ivy}")
        return 0
    from pyspark.sql import SparkSession

    start = time.monotonic()
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("resolve-jars")
        .config("spark.jars.packages", ",".join(packages))
        .config("spark.jars.ivy", str(ivy))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.stop()
    marker.touch()
    print(f"resolved {', '.join(packages)} into {ivy} in {time.monotonic() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
