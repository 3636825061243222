"""The contract verdict: every reason a record breaks the API contract, and the quarantine table's rows.

A record that breaks the contract is never dropped and never half-loaded: it goes to
`silver/quarantine` with its raw text and *every* reason it failed, so one look tells what is
wrong. Reasons are `<code>:<field>` strings (`not_a_json_object` and `unreadable_record` stand alone):

| code               | when                                                                 |
|--------------------|----------------------------------------------------------------------|
| `missing_field`    | a contract field is absent                                           |
| `null_value`       | a contract field is JSON null                                        |
| `wrong_type`       | a field has another JSON type (a quoted number counts), or an integer |
|                    | field holds a fraction or a number beyond its range                  |
| `lone_surrogate`   | a text field holds a lone surrogate escape (`"\\ud800"`): valid JSON, no |
|                    | Unicode text (Spark would load it as "?")                            |
| `unparseable_date` | `modified_date` is not `YYYY-MM-DDTHH:MM:SS` or not a real instant     |
| `unknown_status`   | `status` (trimmed, lower-cased) is not pending, submitted or graded  |
| `negative_value`   | `duration` is below zero                                             |
| `missing_parent`   | a project page carries no `parent.apprenticeship_id`                 |
| `unreadable_record`| valid JSON the JSON reader refuses: a number of more than 100,000    |
|                    | digits (`schemas.JSON_READ_LIMITS`); no field of it can be read      |

An invalid e-mail is *not* a contract break: the record is kept and flagged (`email_is_valid`).
"""

from __future__ import annotations

import functools
import operator
from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..entities import STATUSES, EntitySpec
from .schemas import KIND_MISSING, KIND_NULL, KIND_NUMBER, KIND_OTHER, KIND_STRING, QUARANTINE_SCHEMA

NOT_AN_OBJECT = "not_a_json_object"
UNREADABLE_RECORD = "unreadable_record"
REASON_CODES = (
    "missing_field",
    "null_value",
    "wrong_type",
    "lone_surrogate",
    "unparseable_date",
    "unknown_status",
    "negative_value",
    "missing_parent",
    NOT_AN_OBJECT,
    UNREADABLE_RECORD,
)


def _check(condition: Column, code: str, field: str) -> tuple[Column, str]:
    return condition, f"{code}:{field}"


def _typed(spec: EntitySpec, field: str) -> Column:
    name = spec.typed_column(field)
    if name is None:
        raise ValueError(f"{spec.name}: no typed column is built from the contract field {field!r}")
    return F.col(name)


def contract_reasons(spec: EntitySpec) -> Column:
    """Array of every reason the row breaks the contract (empty = valid).

    Reads the parse helpers `_is_object`, `_unreadable`, `_kind_<field>`, `_lone_<field>` and the typed columns of
    `clean.py`.
    """
    checks: list[tuple[Column, str]] = []  # (the condition, its reason)
    for field in spec.contract:
        kind = F.col(f"_kind_{field.name}")
        checks.append(_check(kind == KIND_MISSING, "missing_field", field.name))
        checks.append(_check(kind == KIND_NULL, "null_value", field.name))
        if field.json_type == "integer":
            wrong = kind.isin(KIND_STRING, KIND_OTHER) | ((kind == KIND_NUMBER) & _typed(spec, field.name).isNull())
        else:
            wrong = kind.isin(KIND_NUMBER, KIND_OTHER)
        checks.append(_check(wrong, "wrong_type", field.name))
        if field.json_type == "string":
            checks.append(_check((kind == KIND_STRING) & F.col(f"_lone_{field.name}"), "lone_surrogate", field.name))
        if field.role == "timestamp":
            checks.append(
                _check((kind == KIND_STRING) & _typed(spec, field.name).isNull(), "unparseable_date", field.name)
            )
        if field.role == "status":
            checks.append(
                _check(
                    (kind == KIND_STRING) & ~F.coalesce(_typed(spec, field.name).isin(*STATUSES), F.lit(False)),
                    "unknown_status",
                    field.name,
                )
            )
        if field.minimum is not None:
            below = _typed(spec, field.name) < F.lit(field.minimum)
            checks.append(_check(F.coalesce(below, F.lit(False)), "negative_value", field.name))
    if spec.parent_column is not None:
        checks.append(_check(F.col(spec.parent_column).isNull(), "missing_parent", spec.parent_column))
    # array_except drops the nulls (checks that passed) with generated code, twice as fast as a lambda filter;
    # it would also drop duplicates, and there are none: each reason names its own check. Most records break no
    # rule: the array is built only for those where a condition holds (one `or` of them first; each condition is
    # computed once for both, by subexpression elimination), the others get the empty array of the same type.
    nulls = F.array(F.lit(None).cast("string"))
    found = F.array_except(F.array(*[F.when(condition, F.lit(reason)) for condition, reason in checks]), nulls)
    field_reasons = F.when(functools.reduce(operator.or_, [condition for condition, _ in checks]), found).otherwise(
        F.array_except(nulls, nulls)  # empty; a constant once folded
    )
    return (
        F.when(~F.col("_is_object"), F.array(F.lit(NOT_AN_OBJECT)))
        .when(F.col("_unreadable"), F.array(F.lit(UNREADABLE_RECORD)))
        .otherwise(field_reasons)
    )


def possible_reasons(spec: EntitySpec) -> tuple[str, ...]:
    """Every reason `contract_reasons` can give for the entity (for counting them in one pass)."""
    reasons = []
    for field in spec.contract:
        reasons += [f"missing_field:{field.name}", f"null_value:{field.name}", f"wrong_type:{field.name}"]
        if field.json_type == "string":
            reasons.append(f"lone_surrogate:{field.name}")
        if field.role == "timestamp":
            reasons.append(f"unparseable_date:{field.name}")
        if field.role == "status":
            reasons.append(f"unknown_status:{field.name}")
        if field.minimum is not None:
            reasons.append(f"negative_value:{field.name}")
    if spec.parent_column is not None:
        reasons.append(f"missing_parent:{spec.parent_column}")
    return (*reasons, NOT_AN_OBJECT, UNREADABLE_RECORD)


def is_valid(reasons: Column) -> Column:
    return F.size(reasons) == 0


def quarantine_records(spec: EntitySpec) -> Callable[[DataFrame], DataFrame]:
    """Cleaned rows → `silver/quarantine` rows for those that break the contract."""

    def step(cleaned: DataFrame) -> DataFrame:
        rejected = cleaned.filter(~is_valid(F.col("reasons"))).withColumn("entity", F.lit(spec.name))
        return rejected.select(*[F.col(field.name) for field in QUARANTINE_SCHEMA.fields])

    return step
