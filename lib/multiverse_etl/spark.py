"""The one SparkSession builder, for jobs and tests alike.

Locally the Delta and S3A jars come from Maven Central through Spark's own Ivy resolver into a
cache the project controls (`spark.ivy_dir`), so the second start downloads nothing. On EMR and
Glue the platform ships the jars and `spark.packages` is an empty list.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Optional

from .config import Config
from .errors import EtlError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Maven coordinates per Spark line: what Glue 5.1 / EMR 7.13 and Glue 6.0 / EMR 8.0 ship.
PACKAGES_BY_SPARK_LINE = {
    "3.5": ["io.delta:delta-spark_2.12:3.3.2", "org.apache.hadoop:hadoop-aws:3.3.4"],
    "4.0": ["io.delta:delta-spark_2.13:4.0.0", "org.apache.hadoop:hadoop-aws:3.4.1"],
    "4.1": ["io.delta:delta-spark_2.13:4.2.0", "org.apache.hadoop:hadoop-aws:3.4.2"],
}


LOOPBACK = "127.0.0.1"


class UnsupportedSparkError(EtlError):
    """The installed pyspark is of a line whose Delta and hadoop-aws jars are not known here."""


def on_loopback(master: Optional[str]) -> bool:
    """A master on this machine: local[*], or a standalone cluster on 127.0.0.1 / localhost."""
    master = master or ""
    return master.startswith("local") or master.startswith((f"spark://{LOOPBACK}:", "spark://localhost:"))


def loopback_env(master: Optional[str]) -> dict[str, str]:
    """Variables for the JVM of a job on this machine.

    SPARK_LOCAL_IP is what binds the web UI (Jetty binds 0.0.0.0 without it, whatever
    spark.driver.bindAddress says) and what stops the "hostname resolves to a loopback address" warning.
    """
    return {"SPARK_LOCAL_IP": LOOPBACK} if on_loopback(master) else {}


def spark_log_level() -> str:
    """Spark's own level once the session is up: WARN, or INFO when our logging is at DEBUG."""
    return "INFO" if logging.getLogger().getEffectiveLevel() <= logging.DEBUG else "WARN"


def spark_line(version: Optional[str] = None) -> str:
    """'3.5', '4.0', '4.1' for the installed (or given) pyspark version."""
    if version is None:
        import pyspark

        version = pyspark.__version__
    return ".".join(version.split(".")[:2])


def default_packages(version: Optional[str] = None) -> list[str]:
    line = spark_line(version)
    if line not in PACKAGES_BY_SPARK_LINE:
        raise UnsupportedSparkError(
            f"pyspark {line} is not a supported line; supported: {sorted(PACKAGES_BY_SPARK_LINE)}"
        )
    return PACKAGES_BY_SPARK_LINE[line]


def spark_conf(config: Config, pyspark_version: Optional[str] = None) -> dict[str, str]:
    """Every Spark setting the project needs, as a plain dict (pure: tested without a JVM)."""
    conf: dict[str, str] = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(config.transform.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.ui.showConsoleProgress": "false",
        # HotSpot never JIT-compiles a method over 8,000 bytes of bytecode, and the validation step's
        # generated code is bigger: at Spark's default (65,535) it ran interpreted, 1.6x slower.
        # At 8,000 Spark runs such a stage without whole-stage codegen: each expression compiled on its own.
        "spark.sql.codegen.hugeMethodLimit": "8000",
        # Generated classes kept for reuse (Spark's default: 100). One transform run compiles 250-600 classes, so at 100
        # every run compiled them all again, even in one session: Janino compilation was most of a small run's CPU
        # (an incremental run at 2,000: 584 compilations; with 2,000 entries none after the session's first run,
        # 309 within it; about 180 MiB metaspace either way; docs/transform.md).
        "spark.sql.codegen.cache.maxEntries": "2000",
        # Bronze's and silver's plans have more than the default 25 fields: without this, Spark warns
        # "Truncated the string representation of a plan" on every run.
        "spark.sql.debug.maxToStringFields": "500",
        # File listings in parallel (Delta's VACUUM among them) use this many tasks; Spark's default of 10,000
        # made every VACUUM a 10,000-task stage: 110 s for a one-file table on a 2-core standalone cluster.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(config.transform.shuffle_partitions),
        # JVMs in UTC, like the session: Delta then updates a table's state after a commit incrementally instead
        # of rebuilding it from the log (a few Spark jobs per commit on a small table).
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    }
    if on_loopback(config.spark.master):
        # One machine: the driver's RPC and block manager listen on loopback only (the UI: SPARK_LOCAL_IP).
        conf["spark.driver.host"] = LOOPBACK
        conf["spark.driver.bindAddress"] = LOOPBACK
    packages = default_packages(pyspark_version) if config.spark.packages == "auto" else list(config.spark.packages)
    if packages:
        conf["spark.jars.packages"] = ",".join(packages)
    if config.spark.ivy_dir:
        conf["spark.jars.ivy"] = config.spark.ivy_dir
    conf.update(s3a_conf(config))
    conf.update({k: str(v) for k, v in config.spark.conf.items()})
    return conf


def s3a_conf(config: Config) -> dict[str, str]:
    """Hadoop S3A settings from conf/: a local endpoint, or the instance role on AWS."""
    s3 = config.s3
    prefix = "spark.hadoop.fs.s3a."
    conf = {
        prefix + "path.style.access": str(s3.path_style_access).lower(),
        prefix + "connection.ssl.enabled": str(s3.ssl_enabled).lower(),
        prefix + "endpoint.region": s3.region,
        prefix + "fast.upload": "true",
        # Retries, explicit (S3Config says what each is): S3 answers 503 SlowDown under load and drops connections.
        # Timeouts (hadoop-aws 3.3.4's defaults, explicit) in plain milliseconds, which 3.3 (ints) and 3.4 read.
        prefix + "attempts.maximum": str(s3.s3a_attempts_maximum),
        prefix + "retry.limit": str(s3.s3a_retry_limit),
        prefix + "retry.interval": f"{s3.s3a_retry_interval_ms}ms",
        prefix + "retry.throttle.limit": str(s3.s3a_throttle_limit),
        prefix + "retry.throttle.interval": f"{s3.s3a_throttle_interval_ms}ms",
        prefix + "connection.timeout": "200000",
        prefix + "connection.establish.timeout": "5000",
    }
    if s3.endpoint_url:
        conf[prefix + "endpoint"] = s3.endpoint_url
    if s3.credentials_provider:
        conf[prefix + "aws.credentials.provider"] = s3.credentials_provider
    if s3.access_key_id and s3.secret_access_key:
        conf[prefix + "access.key"] = s3.access_key_id
        conf[prefix + "secret.key"] = s3.secret_access_key
    if s3.sse:
        # Hadoop 3.3 and 3.4 both name SSE-S3 "AES256".
        conf[prefix + "encryption.algorithm"] = "SSE-KMS" if s3.sse == "aws:kms" else "AES256"
        if s3.sse_kms_key_id:
            conf[prefix + "encryption.key"] = s3.sse_kms_key_id
    return conf


def s3a_bucket_conf(config: Config, bucket: str) -> dict[str, str]:
    """The S3A settings of `config` for one bucket only, as Hadoop keys (fs.s3a.bucket.<bucket>.*).

    They override the session's own for that bucket: a running session reaches a second endpoint (or the same one
    with other retries) for a bucket it has not opened yet (Hadoop caches one S3A filesystem per bucket)."""
    prefix = "spark.hadoop.fs.s3a."
    return {f"fs.s3a.bucket.{bucket}.{k[len(prefix) :]}": v for k, v in s3a_conf(config).items()}


def use_s3a_bucket(spark: SparkSession, config: Config, bucket: str) -> None:
    """Set `s3a_bucket_conf` on a running session (before its first access to that bucket)."""
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    for key, value in s3a_bucket_conf(config, bucket).items():
        hadoop.set(key, value)


# The JVM classes PySpark looks up by their short name on every call: `functions` for each `F.col`, `F.when`, ... (about
# 1,500 lookups in a small incremental run), `PythonUtils` for its sequences.
BY_NAME = ("org.apache.spark.sql.functions", "org.apache.spark.api.python.PythonUtils")


def import_by_name(spark: SparkSession) -> None:
    """Let Py4J find BY_NAME at once. Spark 3.5's PySpark reaches `functions` through its star imports, and each package
    that does not hold it is a failed class lookup, a scan of every jar on the class path (~0.3 ms each: ~0.5 s of a
    small run); Spark 4 imports it by name itself."""
    from py4j.java_gateway import java_import

    for name in BY_NAME:
        java_import(spark._jvm, name)  # type: ignore[attr-defined]


def build_spark(config: Config, app_name: Optional[str] = None) -> SparkSession:
    """Get or create the SparkSession for this config (Delta + S3A ready)."""
    from pyspark.sql import SparkSession

    if (config.spark.master or "").startswith("local"):
        # Python workers must be this interpreter (the venv), not whatever `python3` is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in loopback_env(config.spark.master).items():
        os.environ.setdefault(key, value)  # read by the JVM this builder launches (no effect on a running one)
    builder = SparkSession.builder.appName(app_name or config.spark.app_name)
    if config.spark.master:
        builder = builder.master(config.spark.master)
    for key, value in spark_conf(config).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(spark_log_level())
    import_by_name(spark)
    ui = spark.sparkContext.uiWebUrl
    log.info(
        "spark %s ready (master=%s, app=%s, ui=%s)",
        spark.version,
        spark.sparkContext.master,
        spark.sparkContext.appName,
        ui or "off",
        extra={"spark_version": spark.version, "master": spark.sparkContext.master, "ui": ui},
    )
    return spark
