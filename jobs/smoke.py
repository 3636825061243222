"""spark-submit entry point: write and read back a small Delta table in the configured lake."""

import sys

from multiverse_etl.cli import base_parser, load_job_config, main_for


def body(args) -> int:
    from multiverse_etl.smoke import run_smoke
    from multiverse_etl.spark import build_spark
    from multiverse_etl.storage import spark_path

    config = load_job_config(args)
    spark = build_spark(config, "multiverse-etl-smoke")
    rows = run_smoke(spark, spark_path(config.lake.root, "_smoke/events", config.s3.spark_scheme)).orderBy("id").collect()
    for row in rows:
        print(f"smoke row: {row.id} {row.name} {row.event_date}")
    return 0 if len(rows) == 3 else 1


if __name__ == "__main__":
    parser = base_parser("smoke", "Write a tiny date-partitioned Delta table to the lake and read it back.")
    sys.exit(main_for("smoke", parser, body))
