"""Secrets never on a command line: --set, spark-submit.sh (and its --dry-run) and Glue parameters refuse them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from multiverse_etl.config import ConfigError
from multiverse_etl.glue import glue_argv
from multiverse_etl.set_flags import parse_set_flags

ROOT = Path(__file__).resolve().parents[1]
SECRET = "SuperSecret123"


@pytest.mark.parametrize(
    "key",
    [
        "api.password",
        "s3.secret_access_key",
        "spark.conf.spark.hadoop.fs.s3a.secret.key",
        "spark.conf.spark.executorEnv.MV_PSEUDONYMISE_KEY",
    ],
)
def test_set_refuses_secret_keys_and_names_the_safe_ways(key):
    with pytest.raises(ConfigError) as refused:
        parse_set_flags([f"{key}={SECRET}"])
    message = str(refused.value)
    assert key in message and SECRET not in message
    assert "environment variable" in message and "Secrets Manager" in message and "config file" in message


def test_names_of_secrets_are_not_secrets():
    allowed = [
        "api.secret_id=prod/api",
        "transform.pseudonymise_key_env=MY_KEY",
        "api.username=etl",
        "s3.access_key_id=AKIA",
        "spark.conf.spark.hadoop.fs.s3a.aws.credentials.provider=x",
    ]
    assert len(parse_set_flags(allowed)) == len(allowed)


def _run(*command: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MV_")}
    return subprocess.run(list(command), capture_output=True, text=True, timeout=120, env=env)


def test_spark_submit_dry_run_refuses_a_password_with_exit_code_2_and_never_prints_it():
    shown = _run(
        str(ROOT / "spark-submit.sh"), "extract", "--env", "local", "--set", f"api.password={SECRET}", "--dry-run"
    )
    assert shown.returncode == 2 and "api.password" in shown.stderr and "MV_API_PASSWORD" in shown.stderr
    assert SECRET not in shown.stdout + shown.stderr


def test_a_job_refuses_a_secret_set_with_exit_code_2():
    refused = _run(
        sys.executable, str(ROOT / "jobs" / "extract.py"), "--env", "local", "--set", f"s3.secret_access_key={SECRET}"
    )
    assert refused.returncode == 2 and "s3.secret_access_key" in refused.stderr
    assert SECRET not in refused.stdout + refused.stderr


def test_dry_run_masks_a_password_in_a_url():
    shown = _run(
        str(ROOT / "spark-submit.sh"),
        "extract",
        "--env",
        "local",
        "--api-url",
        f"http://etl:{SECRET}@127.0.0.1:9/",
        "--dry-run",
    )
    assert shown.returncode == 0 and SECRET not in shown.stdout and "etl:***@" in shown.stdout


def test_glue_parameters_refuse_a_secret():
    with pytest.raises(ConfigError, match="Glue job parameter --set__api.password"):
        glue_argv(["script.py", "--job", "extract", "--env", "glue", "--set__api.password", SECRET])
    refused = _run(
        sys.executable,
        str(ROOT / "jobs" / "glue_job.py"),
        "--job",
        "extract",
        "--env",
        "glue",
        "--set__api.password",
        SECRET,
    )
    assert refused.returncode == 2 and "--set__api.password" in refused.stderr and SECRET not in refused.stderr


def test_clearing_a_secret_reveals_nothing_and_is_allowed():
    assert parse_set_flags(["s3.secret_access_key=", "api.password="]) == {
        "s3.secret_access_key": "",
        "api.password": "",
    }
