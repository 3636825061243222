"""The SparkSession builder's settings, checked without a JVM, plus the live session's."""

import pytest

from multiverse_etl.config import ConfigError, load_config
from multiverse_etl.spark import UnsupportedSparkError, default_packages, s3a_bucket_conf, spark_conf


def test_local_conf_has_delta_and_the_jars_for_the_installed_spark_line():
    conf = spark_conf(load_config("local", environ={}), pyspark_version="3.5.6")
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    assert conf["spark.jars.packages"] == "io.delta:delta-spark_2.12:3.3.2,org.apache.hadoop:hadoop-aws:3.3.4"
    assert conf["spark.jars.ivy"].endswith(".cache/ivy")
    assert conf["spark.driver.bindAddress"] == "127.0.0.1"  # local servers bind loopback only


def test_spark4_lines_get_scala_213_delta_4_and_hadoop_34():
    assert default_packages("4.1.1") == ["io.delta:delta-spark_2.13:4.2.0", "org.apache.hadoop:hadoop-aws:3.4.2"]
    assert default_packages("4.0.2") == ["io.delta:delta-spark_2.13:4.0.0", "org.apache.hadoop:hadoop-aws:3.4.1"]
    with pytest.raises(UnsupportedSparkError, match="not a supported line"):
        default_packages("3.4.1")


def test_local_s3_conf_points_s3a_at_the_endpoint_with_path_style_and_no_ssl():
    conf = spark_conf(load_config("local-s3", environ={}), pyspark_version="3.5.6")
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:5055"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert (
        conf["spark.hadoop.fs.s3a.aws.credentials.provider"] == "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
    )
    assert conf["spark.hadoop.fs.s3a.encryption.algorithm"] == "AES256"


def test_s3a_retries_are_set_explicitly_and_configurable():
    conf = spark_conf(load_config("local-s3", environ={}), pyspark_version="3.5.6")
    prefix = "spark.hadoop.fs.s3a."
    assert {
        k[len(prefix) :]: v for k, v in conf.items() if k.startswith(prefix) and ("retry" in k or "attempts" in k)
    } == {
        "attempts.maximum": "5",
        "retry.limit": "7",
        "retry.interval": "500ms",
        "retry.throttle.limit": "20",
        "retry.throttle.interval": "500ms",
    }
    assert conf[prefix + "connection.timeout"] == "200000"
    assert conf[prefix + "connection.establish.timeout"] == "5000"
    quick = load_config(
        "local-s3",
        overrides={"s3.s3a_retry_interval_ms": "20", "s3.s3a_retry_limit": "3", "s3.s3a_attempts_maximum": "2"},
        environ={},
    )
    conf = spark_conf(quick, pyspark_version="3.5.6")
    assert (conf[prefix + "retry.interval"], conf[prefix + "retry.limit"], conf[prefix + "attempts.maximum"]) == (
        "20ms",
        "3",
        "2",
    )
    # one bucket's own settings, for a running session that reaches a second endpoint (the S3-fault proxy)
    bucket = s3a_bucket_conf(quick, "faults")
    assert bucket["fs.s3a.bucket.faults.retry.limit"] == "3"
    assert bucket["fs.s3a.bucket.faults.endpoint"] == "http://127.0.0.1:5055"
    with pytest.raises(ConfigError, match="s3.s3a_retry_limit"):
        load_config("local-s3", overrides={"s3.s3a_retry_limit": "-1"}, environ={})


def test_emr_and_glue_use_the_platform_jars_and_the_instance_role():
    for env in ("emr", "glue"):
        conf = spark_conf(load_config(env, environ={}), pyspark_version="3.5.6")
        assert "spark.jars.packages" not in conf
        assert "spark.hadoop.fs.s3a.endpoint" not in conf
        assert "spark.hadoop.fs.s3a.access.key" not in conf
        assert "spark.driver.bindAddress" not in conf
        assert conf["spark.hadoop.fs.s3a.encryption.algorithm"] == "SSE-KMS"


def test_every_environment_keeps_generated_methods_small_enough_for_the_jit():
    """Over 8,000 bytes of bytecode HotSpot interprets a method: the validation ran 1.6x slower."""
    for env in ("local", "local-s3", "emr", "glue"):
        assert (
            spark_conf(load_config(env, environ={}), pyspark_version="3.5.6")["spark.sql.codegen.hugeMethodLimit"]
            == "8000"
        )


def test_a_plan_run_again_after_a_transforms_worth_of_other_plans_is_not_compiled_again(spark):
    """A transform run compiles 250-600 classes: with Spark's 100 cached classes every run compiled them all again
    (most of a small run's CPU). The session keeps 2,000."""
    from pyspark.sql import functions as F

    compilations = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()

    def plan(i: int) -> None:  # a distinct generated class per i (the literal is compiled in)
        spark.range(1).select((F.col("id") * 7 + F.lit(1_000_000 + i)).alias("x")).collect()

    plan(0)
    for i in range(1, 150):
        plan(i)
    before = compilations.getCount()
    plan(0)
    assert compilations.getCount() == before


def test_parallel_file_listing_uses_the_shuffle_partitions_not_sparks_10000_tasks():
    for env in ("local", "local-s3", "emr", "glue", "emr-serverless"):
        config = load_config(env, environ={})
        conf = spark_conf(config, pyspark_version="3.5.6")
        assert conf["spark.sql.sources.parallelPartitionDiscovery.parallelism"] == str(
            config.transform.shuffle_partitions
        )


def test_the_shared_session_runs_delta_in_utc(spark):
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.codegen.hugeMethodLimit") == "8000"
    assert spark.conf.get("spark.sql.codegen.cache.maxEntries") == "2000"
    assert spark.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"


def test_the_session_finds_the_classes_pyspark_calls_by_name_without_searching_its_star_imports(spark):
    """Each `F.col`, `F.when`, ... asks Py4J for `functions`; reached through PySpark 3.5's star imports, every package
    that does not hold it costs a failed class lookup (a scan of every jar). Py4J reads single imports first; `dir` of
    a JVM view lists their names."""
    assert {"functions", "PythonUtils"} <= set(dir(spark._jvm))
    assert spark._jvm.functions.lit(7).toString() == "7"
