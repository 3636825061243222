"""Pseudonymisation of personal data in gold: a keyed hash (a real HMAC-SHA256) built from Spark SQL functions.

Why an HMAC and not `sha2(value)` or `sha2(key || value)`:

* an unkeyed hash of a name or an e-mail address is reversed by hashing a list of candidates
  (every e-mail in a leaked list, every first name in a census): it hides nothing;
* `sha2(key || value)` is keyed, but SHA-256 on its own is not a safe MAC construction
  (length extension), and there is no reason to argue about it when the standard one can be had.

`pseudonymise` computes RFC 2104 HMAC-SHA256 exactly (checked against Python's `hmac` in
tests/test_pseudonymise.py) with no Python UDF: the key is known on the driver, so the padded
inner and outer keys `K' xor ipad` and `K' xor opad` are computed once in Python and enter the
plan as binary literals; Spark then evaluates

    inner = unhex(sha2(concat(K' xor ipad, message), 256))
    hmac  = sha2(concat(K' xor opad, inner), 256)                -- 64 lowercase hex characters

with `message = UTF-8(context) || 0x00 || UTF-8(value)`. The context is the column's name in
`pseudonymise_personal_data`, so the same text gets different pseudonyms in different columns (a
first name cannot be linked to an equal last name) while one column stays joinable across tables
and runs (`gold/apprenticeships.email_address` = `gold/apprenticeship_projects.email_address`).
Null stays null. Values are hashed as silver holds them: trimmed, NFC, e-mail lower-cased, so one
person has one pseudonym whatever the source's typing.

The key: at least 32 bytes (256 bits) of secret from the environment variable named by
`transform.pseudonymise_key_env` (on AWS: a Secrets Manager value injected as that variable).
Whoever holds the key can confirm a guess ("is this row jane@example.org?"), so it is held like a
password: never in a config file, a log or the lake. The key appears in the Spark plan as
literals: do not print the plan of a pseudonymising job where others can read it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterable, Mapping, Optional

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

PERSONAL_COLUMNS = ("first_name", "last_name", "email_address")
MIN_KEY_BYTES = 32
_BLOCK = 64  # SHA-256 block size in bytes (RFC 2104 "B")
_IPAD, _OPAD = 0x36, 0x5C


class PseudonymisationKeyError(ValueError):
    """The pseudonymisation key is missing or too short; the message names the variable, never the value."""

    user_facing = True


def _key_bytes(key: str | bytes) -> bytes:
    data = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(data) < MIN_KEY_BYTES:
        raise PseudonymisationKeyError(
            f"the pseudonymisation key must be at least {MIN_KEY_BYTES} bytes (256 bits), got {len(data)}"
        )
    return data


def _padded_keys(key: str | bytes) -> tuple[bytearray, bytearray]:
    """(K' xor ipad, K' xor opad) of RFC 2104 for SHA-256."""
    data = _key_bytes(key)
    if len(data) > _BLOCK:
        data = hashlib.sha256(data).digest()
    data = data.ljust(_BLOCK, b"\x00")
    return bytearray(b ^ _IPAD for b in data), bytearray(b ^ _OPAD for b in data)


def pseudonymise(column: Column, key: str | bytes, context: str = "") -> Column:
    """HMAC-SHA256(key, UTF-8(context) || 0x00 || UTF-8(value)) as 64 lowercase hex characters; null stays null.

    `key`: at least 32 bytes (a str is taken as UTF-8). `context` separates uses of one key
    (`pseudonymise_personal_data` passes the column name).
    """
    inner_key, outer_key = _padded_keys(key)
    prefix = bytearray(context.encode("utf-8") + b"\x00")
    message = F.concat(F.lit(prefix), F.encode(column.cast("string"), "UTF-8"))
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_key), message), 256))
    hashed = F.sha2(F.concat(F.lit(outer_key), inner), 256)
    return F.when(column.isNotNull(), hashed)


def pseudonymise_personal_data(df: DataFrame, key: str | bytes, columns: Iterable[str] = PERSONAL_COLUMNS) -> DataFrame:
    """`df` with each of `columns` it has replaced by its pseudonym (context = the column name).

    The schema is kept: same columns, same order, same types (string) and nullability; the
    columns `df` does not have are skipped, so one call fits both gold tables.
    """
    targets = [c for c in columns if c in df.columns]
    _key_bytes(key)  # fail on a short key even when there is nothing to hash
    for name in targets:
        if df.schema[name].dataType.typeName() != "string":
            raise TypeError(f"column {name!r} is {df.schema[name].dataType.simpleString()}, expected string")
    if not targets:
        return df
    return df.select(*[_pseudonym_column(df, c, key) if c in targets else F.col(c) for c in df.columns])


def _pseudonym_column(df: DataFrame, name: str, key: str | bytes) -> Column:
    hashed = pseudonymise(F.col(name), key, name)
    if df.schema[name].nullable:
        return hashed.alias(name)
    # The HMAC of a non-null value is never null; the coalesce is never taken, it only tells Spark so,
    # so that a NOT NULL column stays NOT NULL (the schema is kept).
    return F.coalesce(hashed, F.lit("")).alias(name)


def key_fingerprint(key: str | bytes) -> str:
    """A short public tag of the key (HMAC of a constant): gold records it to see when the key changed.

    It reveals nothing about the key; two gold builds with different fingerprints cannot be joined on pseudonyms.
    (The constant is the one gold has always been stamped with: changing it would rebuild every lake's gold.)
    """
    import hmac

    return hmac.new(_key_bytes(key), b"multiverse-etl gold pseudonyms", hashlib.sha256).hexdigest()[:16]


def pseudonymisation_key(env_var: str, environ: Optional[Mapping[str, str]] = None) -> str:
    """The key from the environment variable `env_var` (transform.pseudonymise_key_env), checked.

    Raises PseudonymisationKeyError naming the variable (never its value) when it is unset or shorter
    than 32 bytes. Generate one with: python -c "import secrets; print(secrets.token_hex(32))".
    """
    environ = os.environ if environ is None else environ
    value = environ.get(env_var)
    if not value:
        raise PseudonymisationKeyError(
            f"transform.pseudonymise_gold is on but the environment variable {env_var} (transform.pseudonymise_key_env) "
            f"is not set; set it to a secret of at least {MIN_KEY_BYTES} bytes, e.g. "
            'python -c "import secrets; print(secrets.token_hex(32))"'
        )
    try:
        _key_bytes(value)
    except PseudonymisationKeyError:
        raise PseudonymisationKeyError(
            f"the environment variable {env_var} (transform.pseudonymise_key_env) holds {len(value.encode())} bytes; "
            f"the pseudonymisation key must be at least {MIN_KEY_BYTES} bytes (256 bits)"
        ) from None
    return value
