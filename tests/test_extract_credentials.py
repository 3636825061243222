"""Where the API login comes from: variables over YAML, Secrets Manager (on the local moto endpoint) on AWS."""

from __future__ import annotations

import json

import boto3
import pytest

from multiverse_etl.config import ApiConfig, load_config
from multiverse_etl.errors import EtlError
from multiverse_etl.extract.credentials import resolve_credentials
from multiverse_etl.extract.errors import CredentialsError


def test_environment_variables_beat_the_yaml():
    config = load_config("local", environ={"MV_API_USERNAME": "someone", "MV_API_PASSWORD": "from-env-123"})
    credentials = resolve_credentials(config.api)
    assert credentials.username == "someone" and credentials.password.reveal() == "from-env-123"
    assert "from-env-123" not in repr(credentials) and "from-env-123" not in repr(config)


def test_missing_credentials_name_what_to_set():
    with pytest.raises(CredentialsError, match="set MV_API_PASSWORD .*api.secret_id") as caught:
        resolve_credentials(ApiConfig(username="someone"))
    assert isinstance(caught.value, EtlError)


@pytest.fixture
def secrets_endpoint(local_s3, monkeypatch):
    """The local moto server also speaks Secrets Manager; boto3 finds it through the standard variable."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", local_s3.endpoint_url)
    return boto3.client("secretsmanager", region_name="eu-west-2", endpoint_url=local_s3.endpoint_url)


def test_credentials_from_a_secrets_manager_secret(secrets_endpoint):
    secrets_endpoint.create_secret(
        Name="multiverse-etl/api-test", SecretString=json.dumps({"username": "svc-user", "password": "from-sm-456"})
    )
    config = load_config("emr", environ={}, overrides={"api.secret_id": "multiverse-etl/api-test"})
    credentials = resolve_credentials(config.api, region="eu-west-2")
    assert credentials.username == "svc-user" and credentials.password.reveal() == "from-sm-456"
    assert credentials.source == "secretsmanager:multiverse-etl/api-test"


def test_a_missing_or_malformed_secret_fails_clearly_without_its_value(secrets_endpoint):
    with pytest.raises(CredentialsError, match="ResourceNotFoundException"):
        resolve_credentials(ApiConfig(secret_id="multiverse-etl/absent"), region="eu-west-2")
    secrets_endpoint.create_secret(Name="multiverse-etl/bad", SecretString='{"user": "x", "pass": "leaky-789"}')
    with pytest.raises(CredentialsError, match="must hold JSON with 'username' and 'password'") as caught:
        resolve_credentials(ApiConfig(secret_id="multiverse-etl/bad"), region="eu-west-2")
    assert "leaky-789" not in str(caught.value)
