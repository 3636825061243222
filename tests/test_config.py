"""The config loader: every env file loads, overrides apply in order, bad input names the key."""

import textwrap

import pytest

from multiverse_etl.config import ConfigError, load_config
from multiverse_etl.set_flags import parse_set_flags


@pytest.mark.parametrize("env", ["local", "local-s3", "emr", "emr-serverless", "glue"])
def test_every_shipped_config_loads(env):
    config = load_config(env, environ={})
    assert config.env == env
    assert config.lake.root


def test_local_lake_root_is_made_absolute_against_the_project_root():
    config = load_config("local", environ={})
    assert config.lake.root.endswith("/lake") and config.lake.root.startswith("/")
    assert config.spark.ivy_dir.endswith("/.cache/ivy")


def test_precedence_is_yaml_then_environment_then_flags():
    environ = {"MV__API__PAGE_SIZE": "250", "MV_API_PASSWORD": "from-env", "MV__EXTRACT__MODE": "incremental"}
    config = load_config("local", overrides={"api.page_size": "300"}, environ=environ)
    assert config.api.page_size == 300  # the flag wins over the variable
    assert config.api.password == "from-env"
    assert config.extract.mode == "incremental"


def test_s3_lake_root_keeps_its_scheme_and_s3a_is_normalised():
    config = load_config("local", overrides={"lake.root": "s3a://bucket/prefix/"}, environ={})
    assert config.lake.root == "s3://bucket/prefix"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"api.page_sise": "10"}, "unknown key 'api.page_sise'"),
        ({"api.page_size": "ten"}, "'api.page_size' must be an integer"),
        ({"api.page_size": "0"}, "'api.page_size' must be at least 1"),
        ({"extract.mode": "sometimes"}, "'extract.mode' must be one of ['full', 'incremental']"),
        ({"api.verify_tls": "maybe"}, "'api.verify_tls' must be true or false"),
        ({"api.url": "ftp://x"}, "'api.url' must start with http"),
        ({"lake.root": "gs://bucket/x"}, "'lake.root' must be a folder or s3://"),
        ({"bogus.key": "1"}, "unknown section(s) ['bogus']"),
        ({"transform.gold_merge_max_share": "1.5"}, "'transform.gold_merge_max_share' must be within 0..1"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config("local", overrides=overrides, environ={})
    assert message in str(error.value)


def test_bad_yaml_file_names_the_file_and_key(tmp_path):
    path = tmp_path / "conf" / "broken.yaml"
    path.parent.mkdir()
    path.write_text(
        textwrap.dedent("""
        lake: {root: lake}
        extract: {part_max_bytes: lots}
    """)
    )
    with pytest.raises(ConfigError) as error:
        load_config(str(path), environ={})
    assert str(path) in str(error.value) and "'extract.part_max_bytes' must be an integer" in str(error.value)


def test_missing_env_lists_the_known_ones():
    with pytest.raises(ConfigError) as error:
        load_config("nowhere", environ={})
    assert "no config for env 'nowhere'" in str(error.value) and "local-s3" in str(error.value)


def test_secrets_never_show_in_repr_or_redacted_dump():
    config = load_config("local", environ={"MV_API_PASSWORD": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(config)
    assert "s3cr3t-value" not in str(config.redacted())
    assert config.redacted()["api"]["password"] == "***"


def test_set_flags_parse_and_reject_missing_equals():
    assert parse_set_flags(["api.page_size=5", "spark.conf.spark.x=a=b"]) == {
        "api.page_size": "5",
        "spark.conf.spark.x": "a=b",
    }
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_set_flags(["api.page_size"])


def test_spark_conf_keys_can_be_set_from_flags():
    config = load_config("local", overrides={"spark.conf.spark.sql.shuffle.partitions": "3"}, environ={})
    assert config.spark.conf["spark.sql.shuffle.partitions"] == "3"


def test_the_lock_lease_is_a_validated_config_key():
    assert load_config("local", environ={}).lake.lock_lease_s == 600
    assert load_config("local", {"lake.lock_lease_s": "120"}, environ={}).lake.lock_lease_s == 120
    with pytest.raises(ConfigError, match="'lake.lock_lease_s' must be at least 30"):
        load_config("local", {"lake.lock_lease_s": "5"}, environ={})


def test_the_multicluster_conf_is_valid_and_opts_into_the_dynamodb_log_store():
    config = load_config("emr-multicluster", environ={})
    assert config.spark.packages == ["io.delta:delta-storage-s3-dynamodb:3.3.2"]  # matches Delta 3.3.2
    for scheme in ("s3", "s3a"):
        assert config.spark.conf[f"spark.delta.logStore.{scheme}.impl"] == "io.delta.storage.S3DynamoDBLogStore"
    assert config.spark.conf["spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName"]
    assert config.spark.conf["spark.io.delta.storage.S3DynamoDBLogStore.ddb.region"] == config.s3.region
