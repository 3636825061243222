"""Configs for tests and benches: a named env's config with the lake moved and sections patched."""

from __future__ import annotations

import dataclasses

from multiverse_etl.config import Config, load_config


def make_config(lake_root: str, env: str = "local", **sections) -> Config:
    """The named env's config with the lake moved to `lake_root` and sections patched (dotted-free)."""
    base = load_config(env, environ={})
    config = dataclasses.replace(base, lake=dataclasses.replace(base.lake, root=lake_root))
    for name, values in sections.items():
        config = dataclasses.replace(config, **{name: dataclasses.replace(getattr(config, name), **values)})
    return config


# The tests' Spark settings (sessions, spark-submit jobs, checks): two cores' worth of partitions, adaptive execution
# off, no UI, a Delta table's state rebuilt by one task.
TEST_SPARK_CONF = {
    "spark.default.parallelism": "2",
    "spark.sql.adaptive.enabled": "false",
    "spark.ui.enabled": "false",
    "spark.databricks.delta.snapshotPartitions": "1",
}


def sized_for_tests(config: Config, **conf: str) -> Config:
    """`config` with two shuffle partitions and TEST_SPARK_CONF (`conf`: more settings, by their Spark names)."""
    config = dataclasses.replace(config, transform=dataclasses.replace(config.transform, shuffle_partitions=2))
    return dataclasses.replace(config, spark=dataclasses.replace(config.spark, conf={**TEST_SPARK_CONF, **conf}))
