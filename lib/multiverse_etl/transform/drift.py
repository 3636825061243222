"""Schema drift: fields the contract does not know, and contract fields no record of a run carried.

The contract (`schemas.SOURCE_CONTRACT`) decides what reaches silver; a field the API starts to serve
would otherwise vanish silently (bronze keeps it in `raw_record`). One Spark pass per entity lists each
record's top-level keys (`json_object_keys`, which only tokenises the JSON and exists in Spark 3.5 and
4.x, NULL for a non-object under ANSI too) and counts records per key; the rest is pure Python.
`transform.on_unknown_fields`: warn (default), fail (the run stays pending), ignore (no scan).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..errors import EtlError

log = logging.getLogger(__name__)

UNKNOWN, MISSING = "unknown", "missing"
POLICIES = ("warn", "fail", "ignore")  # the audit column: schemas.AUDIT_SCHEMA["schema_drift"]


class SchemaDriftError(EtlError):
    """transform.on_unknown_fields is 'fail' and the source served fields the contract does not know."""


@dataclass(frozen=True)
class DriftField:
    entity: str
    field: str
    kind: str
    records: int

    def as_row(self) -> tuple:
        return (self.entity, self.field, self.kind, self.records)


def field_presence(frame: DataFrame, raw_column: str = "raw_record") -> dict[str, int]:
    """Records carrying each top-level key of `raw_column` (JSON objects), in one pass."""
    keys = frame.select(F.explode(F.expr(f"json_object_keys({raw_column})")).alias("field"))
    return {row.field: int(row["count"]) for row in keys.groupBy("field").count().collect()}


def presence_metrics(contract: Sequence[str], raw_column: str = "raw_record") -> list[Column]:
    """Aggregates for `observe`: the records carrying each contract field, and every distinct set of keys seen.

    Observed while another job reads the records, so a run without unknown fields pays no pass of its own
    (`observed_presence` counts an unknown field's records in one more pass only when there is one).
    """
    keys = F.expr(f"json_object_keys({raw_column})")
    return [
        *[F.sum(F.when(F.array_contains(keys, name), 1).otherwise(0)).alias(f"has_{name}") for name in contract],
        # as JSON text: an observed array comes back to Python as a bare Java object
        F.to_json(F.array_distinct(F.flatten(F.collect_set(F.coalesce(keys, F.array().cast("array<string>")))))).alias(
            "keys"
        ),
    ]


def observed_presence(
    observed: Mapping[str, object], contract: Sequence[str], frame: DataFrame, raw_column: str = "raw_record"
) -> dict[str, int]:
    """Records per top-level key, from `presence_metrics` (and one pass over `frame` for unknown keys only)."""
    present = {name: int(str(observed.get(f"has_{name}") or 0)) for name in contract}
    unknown = sorted(set(json.loads(str(observed.get("keys") or "[]"))) - set(contract))
    if unknown:
        keys = F.expr(f"json_object_keys({raw_column})")
        row = frame.agg(*[F.sum(F.when(F.array_contains(keys, n), 1).otherwise(0)).alias(n) for n in unknown]).first()
        present.update({name: int(row[name] or 0) for name in unknown} if row is not None else {})
    return present


def schema_drift(entity: str, present: Mapping[str, int], contract: Sequence[str], records: int) -> list[DriftField]:
    """Unknown fields (with their record counts) and, when the run had records, contract fields none carried."""
    known = set(contract)
    unknown = [DriftField(entity, name, UNKNOWN, n) for name, n in sorted(present.items()) if name not in known]
    missing = [DriftField(entity, name, MISSING, 0) for name in contract if records and not present.get(name)]
    return unknown + missing


def describe(drift: Iterable[DriftField]) -> str:
    """'apprenticeships: unknown cohort (12 records); missing end_date' (one clause per entity)."""
    by_entity: dict[str, list[str]] = {}
    for item in drift:
        text = f"unknown {item.field} ({item.records} records)" if item.kind == UNKNOWN else f"missing {item.field}"
        by_entity.setdefault(item.entity, []).append(text)
    return "; ".join(f"{entity}: {', '.join(parts)}" for entity, parts in by_entity.items())


def apply_policy(run_id: str, drift: Sequence[DriftField], policy: str) -> None:
    """Log the drift as one warning; raise when the policy is 'fail' and some field is unknown."""
    if policy not in POLICIES:
        raise ValueError(f"transform.on_unknown_fields must be one of {list(POLICIES)}, got {policy!r}")
    if policy == "ignore" or not drift:
        return
    unknown = [item for item in drift if item.kind == UNKNOWN]
    if policy == "fail" and unknown:
        raise SchemaDriftError(
            f"run {run_id}: the source served fields the contract does not know ({describe(unknown)});"
            " transform.on_unknown_fields is 'fail', so the run stays pending: add them to the"
            " contract, or set it to 'warn'"
        )
    log.warning("run %s: schema drift: %s", run_id, describe(drift))


def summary_line(run_id: str, drift: Optional[Sequence[DriftField]]) -> Optional[str]:
    """The summary table's line for a run with drift (None without)."""
    return f"{run_id:<24} schema drift: {describe(drift)}" if drift else None
