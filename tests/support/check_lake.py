"""`python -m support.check_lake`: a lake against the ground truth, in a process with a SparkSession of its own.

For tests that start their own Spark processes and so need not wait for the tests' shared session (test_cluster.py):
under `make test`'s two workers they run beside the Spark tests (tests/support/spark_worker.py). Prints the
comparison; exit status 0 when the lake equals the truth, 1 when it does not.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lake-root", required=True)
    parser.add_argument("--env", default="local")
    parser.add_argument("--s3-endpoint", help="s3.endpoint_url (a local S3 endpoint)")
    parser.add_argument("--scale", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--generation", type=int, default=0)
    parser.add_argument("--run-id", help="compare bronze and quarantine of this run")
    args = parser.parse_args(argv)

    from multiverse_etl.spark import build_spark
    from sample_api.dump import ground_truth
    from support.config import make_config, sized_for_tests
    from support.lake import compare_lake
    from support.oracle import reference_lake

    sections = {"s3": {"endpoint_url": args.s3_endpoint}} if args.s3_endpoint else {}
    config = sized_for_tests(make_config(args.lake_root, env=args.env, **sections))
    config = dataclasses.replace(config, spark=dataclasses.replace(config.spark, master="local[2]"))
    spark = build_spark(config, "check-lake")
    try:
        comparison = compare_lake(
            spark, config, reference_lake(ground_truth(args.scale, args.seed, args.generation)), args.run_id
        )
    finally:
        spark.stop()
    print(comparison.describe())
    return 0 if comparison.ok else 1


if __name__ == "__main__":
    sys.exit(main())
