"""Reconciliation: every record of a run is accounted for at every stage, or the job fails.

For each entity of each run:

    landed (manifest)  = pages and records read from the landing = bronze rows written = bronze rows read back
    bronze rows        = valid + quarantined          (quarantined = quarantine rows written)
    valid              = upsert candidates + duplicates collapsed
    upsert candidates  = inserted + updated + unchanged
    Delta MERGE        : rows inserted = inserted, rows updated = updated + deleted

Pure Python over counts, so every rule is tested without Spark.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Optional

from ..errors import EtlError

if TYPE_CHECKING:  # only read here: the counts come from what the steps returned
    from .bronze import Prepared
    from .merge import MergeOutcome
    from .read import LoadPlan


class ReconciliationError(EtlError):
    """A run's counts do not add up: something was lost or duplicated. The message lists each mismatch."""


@dataclass
class EntityCounts:
    entity: str
    landed_pages: int = 0  # manifest
    landed_records: int = 0  # manifest
    pages_read: int = 0
    records_read: int = 0  # sum of page sizes while reading the landing
    bronze_rows: int = 0  # rows written to bronze for the run
    bronze_read: int = 0  # rows of the run read back from bronze
    valid_rows: int = 0
    quarantined_rows: int = 0
    quarantine_written: int = 0
    duplicates_collapsed: int = 0
    upsert_candidates: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    merge_inserted: int = 0  # Delta's own MERGE metrics
    merge_updated: int = 0
    silver_live_rows: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def entity_counts(plan: LoadPlan, p: Prepared, quarantined: int, merged: MergeOutcome, live: int) -> EntityCounts:
    """An entity's reconciliation counts, from what each step returned."""
    name, landing = p.spec.name, p.landing
    return EntityCounts(
        name,
        landed_pages=plan.pages[name],
        landed_records=plan.records[name],
        pages_read=int(landing.get("pages") or 0),
        records_read=int(landing.get("records") or 0),
        bronze_rows=int(landing.get("rows") or 0),
        bronze_read=p.bronze_read,
        valid_rows=p.valid_rows,
        quarantined_rows=p.quarantined_rows,
        quarantine_written=quarantined,
        duplicates_collapsed=p.duplicates_collapsed,
        upsert_candidates=p.upsert_candidates,
        inserted=merged.inserted,
        updated=merged.updated,
        unchanged=merged.unchanged,
        deleted=merged.deleted,
        merge_inserted=merged.merge_inserted,
        merge_updated=merged.merge_updated,
        silver_live_rows=live,
    )


def _check(mismatches: list[str], entity: str, left_name: str, left: int, right_name: str, right: int) -> None:
    if left != right:
        mismatches.append(f"{entity}: {left_name} {left} != {right_name} {right}")


def reconcile(counts: EntityCounts) -> list[str]:
    """The mismatches of one entity of one run (empty: everything is accounted for)."""
    c, out = counts, list[str]()
    _check(out, c.entity, "landed pages (manifest)", c.landed_pages, "pages read", c.pages_read)
    _check(out, c.entity, "landed records (manifest)", c.landed_records, "records read", c.records_read)
    _check(out, c.entity, "records read", c.records_read, "bronze rows written", c.bronze_rows)
    _check(out, c.entity, "bronze rows written", c.bronze_rows, "bronze rows of the run", c.bronze_read)
    _check(out, c.entity, "bronze rows", c.bronze_read, "valid + quarantined", c.valid_rows + c.quarantined_rows)
    _check(out, c.entity, "quarantined", c.quarantined_rows, "quarantine rows written", c.quarantine_written)
    _check(
        out,
        c.entity,
        "valid",
        c.valid_rows,
        "upsert candidates + duplicates collapsed",
        c.upsert_candidates + c.duplicates_collapsed,
    )
    _check(
        out,
        c.entity,
        "upsert candidates",
        c.upsert_candidates,
        "inserted + updated + unchanged",
        c.inserted + c.updated + c.unchanged,
    )
    _check(out, c.entity, "planned inserts", c.inserted, "MERGE rows inserted", c.merge_inserted)
    _check(out, c.entity, "planned updates + deletions", c.updated + c.deleted, "MERGE rows updated", c.merge_updated)
    return out


def reconcile_run(entities: Iterable[EntityCounts]) -> list[str]:
    return [problem for counts in entities for problem in reconcile(counts)]


SUMMARY_COLUMNS = (
    ("entity", "entity", 15),
    ("landed", "landed_records", 9),
    ("bronze", "bronze_read", 9),
    ("quarant.", "quarantined_rows", 8),
    ("dupes", "duplicates_collapsed", 7),
    ("inserted", "inserted", 9),
    ("updated", "updated", 8),
    ("unchanged", "unchanged", 9),
    ("deleted", "deleted", 8),
    ("live", "silver_live_rows", 9),
)


def summary_table(
    runs: Iterable[tuple[str, Iterable[EntityCounts], list[str]]], extra: Optional[list[str]] = None
) -> list[str]:
    """Fixed-width lines: one per entity per run, then the verdict of each run."""
    header = (
        f"{'run':<24} "
        + " ".join(
            f"{title:>{width}}" if title != "entity" else f"{title:<{width}}" for title, _, width in SUMMARY_COLUMNS
        )
        + "  ok"
    )
    lines = [header, "-" * len(header)]
    for run_id, entities, mismatches in runs:
        for counts in entities:
            values = counts.as_dict()
            cells = " ".join(
                f"{values[key]:<{width}}" if key == "entity" else f"{values[key]:>{width}}"
                for _, key, width in SUMMARY_COLUMNS
            )
            bad = any(m.startswith(counts.entity + ":") for m in mismatches)
            lines.append(f"{run_id:<24} {cells}  {'NO' if bad else 'yes'}")
    lines.extend(extra or [])
    return lines
