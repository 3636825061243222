"""spark-submit entry point: OPTIMIZE recent partitions and VACUUM every Delta table of the lake."""

import sys

from multiverse_etl.cli import base_parser, load_job_config, main_for


def body(args) -> int:
    from multiverse_etl.lock import break_lock, lake_lock
    from multiverse_etl.maintain import check_retention, format_report, maintain_tables
    from multiverse_etl.spark import build_spark
    from multiverse_etl.storage import open_storage

    config = load_job_config(args)
    retention = args.retention_hours if args.retention_hours is not None else config.maintain.vacuum_retention_hours
    check_retention(retention, args.force)  # refuse before starting Spark
    storage = open_storage(config.lake.root, config.s3)
    if args.break_lock:
        break_lock(storage)
    with lake_lock(storage, owner="maintain"):
        spark = build_spark(config, "multiverse-etl-maintain")
        reports = maintain_tables(
            spark, storage, config.lake.root, config.s3.spark_scheme,
            optimize_days=args.days if args.days is not None else config.maintain.optimize_days,
            retention_hours=retention, force=args.force, tables=args.table or None, vacuum=not args.no_vacuum,
        )
    print(format_report(reports))
    return 0


if __name__ == "__main__":
    parser = base_parser("maintain", "Compact recent partitions (OPTIMIZE, Z-ORDER) and VACUUM old files.")
    parser.add_argument("--days", type=int, help="optimize partitions of the last N days (maintain.optimize_days)")
    parser.add_argument("--retention-hours", type=int, help="VACUUM retention (maintain.vacuum_retention_hours, min 168)")
    parser.add_argument("--force", action="store_true", help="allow a VACUUM retention below 7 days")
    parser.add_argument("--no-vacuum", action="store_true", help="only OPTIMIZE")
    parser.add_argument("--table", action="append", help="only this table (e.g. silver/projects); repeatable")
    parser.add_argument("--break-lock", action="store_true", help="remove a crashed writer's lake lock first")
    sys.exit(main_for("maintain", parser, body))
