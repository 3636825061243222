"""The contract verdict: every reason a record breaks the API contract, and the quarantine table's rows.

A record that breaks the contract is never dropped and never half-loaded: it goes to
`silver/quarantine` with its raw text and *every* reason it failed, so one look tells what is
wrong. Reasons are `<code>:<field>` strings (`not_a_json_object` stands alone):

| code               | when                                                                 |
|--------------------|----------------------------------------------------------------------|
| `missing_field`    | a contract field is absent                                           |
| `null_value`       | a contract field is JSON null                                        |
| `wrong_type`       | a field has another JSON type (a quoted number counts), or an integer |
|                    | field holds a fraction or a number beyond its range                  |
| `unparseable_date` | `modified_date` is not `YYYY-MM-DDTHH:MM:SS` or not a real instant     |
| `unknown_status`   | `status` (trimmed, lower-cased) is not pending, submitted or graded  |
| `negative_value`   | `duration` is below zero                                             |
| `missing_parent`   | a project page carries no `parent.apprenticeship_id`                 |

An invalid e-mail is *not* a contract break: the record is kept and flagged (`email_is_valid`).
"""

from __future__ import annotations

from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .schemas import QUARANTINE_SCHEMA, SOURCE_CONTRACT, STATUSES

NOT_AN_OBJECT = "not_a_json_object"
REASON_CODES = ("missing_field", "null_value", "wrong_type", "unparseable_date", "unknown_status", "negative_value",
                "missing_parent", NOT_AN_OBJECT)

# Contract field -> the cleaned column holding its typed value.
TYPED_COLUMN = {
    "apprenticeships": {"id": "apprenticeship_id", "programme_id": "programme_id", "modified_date": "modified_date"},
    "projects": {"id": "project_id", "status": "status"},
    "programmes": {"id": "programme_id", "duration": "duration"},
}


def _reason(condition: Column, code: str, field: str) -> Column:
    return F.when(condition, F.lit(f"{code}:{field}"))


def contract_reasons(entity: str) -> Column:
    """Array of every reason the row breaks the contract (empty = valid).

    Reads the parse helpers `_is_object`, `_kind_<field>` and the typed columns of `clean.py`.
    """
    checks: list[Column] = []
    for field in SOURCE_CONTRACT[entity]:
        kind = F.col(f"_kind_{field.name}")
        typed = F.col(TYPED_COLUMN[entity][field.name]) if field.name in TYPED_COLUMN[entity] else None
        checks.append(_reason(kind == "missing", "missing_field", field.name))
        checks.append(_reason(kind == "null", "null_value", field.name))
        if field.json_type == "integer":
            wrong = kind.isin("string", "other") | ((kind == "number") & typed.isNull())
        else:
            wrong = kind.isin("number", "other")
        checks.append(_reason(wrong, "wrong_type", field.name))
        if field.role == "timestamp":
            checks.append(_reason((kind == "string") & typed.isNull(), "unparseable_date", field.name))
        if field.role == "status":
            checks.append(_reason((kind == "string") & ~F.coalesce(typed.isin(*STATUSES), F.lit(False)),
                                  "unknown_status", field.name))
        if field.name == "duration":
            checks.append(_reason(F.coalesce(typed < 0, F.lit(False)), "negative_value", field.name))
    if entity == "projects":
        checks.append(_reason(F.col("apprenticeship_id").isNull(), "missing_parent", "apprenticeship_id"))
    # array_except drops the nulls (checks that passed) with generated code, twice as fast as a lambda filter;
    # it would also drop duplicates, and there are none: each reason names its own check.
    field_reasons = F.array_except(F.array(*checks), F.array(F.lit(None).cast("string")))
    return F.when(F.col("_is_object"), field_reasons).otherwise(F.array(F.lit(NOT_AN_OBJECT)))


def possible_reasons(entity: str) -> tuple[str, ...]:
    """Every reason `contract_reasons` can give for `entity` (for counting them in one pass)."""
    reasons = []
    for field in SOURCE_CONTRACT[entity]:
        reasons += [f"missing_field:{field.name}", f"null_value:{field.name}", f"wrong_type:{field.name}"]
        if field.role == "timestamp":
            reasons.append(f"unparseable_date:{field.name}")
        if field.role == "status":
            reasons.append(f"unknown_status:{field.name}")
        if field.name == "duration":
            reasons.append(f"negative_value:{field.name}")
    if entity == "projects":
        reasons.append("missing_parent:apprenticeship_id")
    return (*reasons, NOT_AN_OBJECT)


def is_valid(reasons: Column) -> Column:
    return F.size(reasons) == 0


def valid_records(cleaned: DataFrame) -> DataFrame:
    """Rows that meet the contract."""
    return cleaned.filter(is_valid(F.col("reasons")))


def quarantine_records(entity: str) -> Callable[[DataFrame], DataFrame]:
    """Cleaned rows → `silver/quarantine` rows for those that break the contract."""

    def step(cleaned: DataFrame) -> DataFrame:
        rejected = cleaned.filter(~is_valid(F.col("reasons"))).withColumn("entity", F.lit(entity))
        return rejected.select(*[F.col(field.name) for field in QUARANTINE_SCHEMA.fields])

    return step
