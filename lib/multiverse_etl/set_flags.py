"""The `--set KEY=VALUE` flags, parsed; secret keys are refused there and in Glue job parameters.

A command line is seen by `ps` on the host and kept in EMR step and Glue run arguments (and printed by
--dry-run), so a password there leaks. The safe ways are named in the refusal.
"""

from __future__ import annotations

import re
from typing import Optional

from .config import SECRET_KEYS, ConfigError

# A key whose value is a secret (a password, a secret key, a token, the pseudonymisation key), wherever it sits
# (spark.conf.spark.hadoop.fs.s3a.secret.key, spark.conf.spark.executorEnv.MV_PSEUDONYMISE_KEY too); names of
# secrets (api.secret_id, transform.pseudonymise_key_env) and providers are not secrets.
SECRET_KEY_NAME = re.compile(r"password|secret|token|pseudonymi[sz]e_key|[._]key$", re.IGNORECASE)
NOT_A_SECRET_NAME = re.compile(r"(_id|_env|provider|\.access\.key)$", re.IGNORECASE)
SAFE_WAYS = (
    "an environment variable (MV_API_PASSWORD, MV__SECTION__KEY, AWS_SECRET_ACCESS_KEY, MV_PSEUDONYMISE_KEY), "
    "AWS Secrets Manager (api.secret_id) or the config file"
)


def is_secret_key(dotted: str) -> bool:
    """Whether `dotted` (a config key, or a --set / Glue parameter name) holds a secret value."""
    if (dotted.partition(".")[0], dotted.partition(".")[2]) in SECRET_KEYS:
        return True
    return bool(SECRET_KEY_NAME.search(dotted)) and not NOT_A_SECRET_NAME.search(dotted)


def refuse_secret_on_command_line(dotted: str, where: str = "--set ") -> None:
    """Secrets never go on a command line (seen by `ps`, kept in EMR step and Glue run arguments)."""
    if is_secret_key(dotted.strip()):
        raise ConfigError(
            f"{where}{dotted.strip()}: a secret must not be given on the command line (it shows in `ps` and in "
            f"EMR/Glue job arguments); use {SAFE_WAYS}"
        )


def parse_set_flags(items: Optional[list[str]]) -> dict[str, str]:
    """`--set api.page_size=500` flags to overrides; a secret key is refused (ConfigError, exit code 2)."""
    result: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. api.page_size=500")
        key, value = item.split("=", 1)
        if value.strip():  # clearing a secret (`--set s3.secret_access_key=`) reveals nothing
            refuse_secret_on_command_line(key)
        result[key.strip()] = value
    return result
