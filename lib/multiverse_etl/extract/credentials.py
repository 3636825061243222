"""Where the API login comes from: MV_API_USERNAME/MV_API_PASSWORD (or the config), else Secrets Manager.

The config loader already maps the two variables onto api.username / api.password, so
variables beat the YAML. On EMR/Glue the YAML names a Secrets Manager secret instead
(`api.secret_id`) holding {"username": ..., "password": ...}; the instance role reads it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Optional

from ..config import ApiConfig
from .errors import CredentialsError
from .redaction import Secret

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: Secret
    source: str  # "config/environment" or "secretsmanager:<id>", for the start-up log line


def resolve_credentials(api: ApiConfig, region: Optional[str] = None, client=None) -> Credentials:
    """The login to use; raises CredentialsError naming where it looked (never a value)."""
    if api.username and api.password:
        return Credentials(api.username, Secret(api.password), "config/environment")
    if api.secret_id:
        username, password = _from_secrets_manager(api.secret_id, region, client)
        return Credentials(username, Secret(password), f"secretsmanager:{api.secret_id}")
    missing = [
        name for name, value in (("MV_API_USERNAME", api.username), ("MV_API_PASSWORD", api.password)) if not value
    ]
    raise CredentialsError(
        f"no API credentials: set {' and '.join(missing)} (or api.username/api.password), "
        "or name an AWS Secrets Manager secret in api.secret_id"
    )


def _from_secrets_manager(secret_id: str, region: Optional[str], client=None) -> tuple[str, str]:
    """Read {"username", "password"} from a Secrets Manager secret (endpoint from AWS_ENDPOINT_URL_SECRETS_MANAGER)."""
    if client is None:
        import boto3

        client = boto3.client("secretsmanager", region_name=region)
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except Exception as exc:  # botocore raises many kinds; the message names the secret, not its value
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise CredentialsError(
            f"cannot read API credentials from Secrets Manager secret {secret_id!r}: {code}"
        ) from None
    try:
        value = json.loads(response.get("SecretString") or "")
    except json.JSONDecodeError:
        raise CredentialsError(
            f"Secrets Manager secret {secret_id!r} is not JSON with 'username' and 'password'"
        ) from None
    if not isinstance(value, dict) or not value.get("username") or not value.get("password"):
        raise CredentialsError(f"Secrets Manager secret {secret_id!r} must hold JSON with 'username' and 'password'")
    log.info("API credentials read from Secrets Manager secret %s", secret_id)
    return str(value["username"]), str(value["password"])
