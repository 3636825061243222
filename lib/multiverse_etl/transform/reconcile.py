"""Reconciliation: every record of a run is accounted for at every stage, or the job fails.

For each entity of each run:

    landed (manifest)  = pages and records read from the landing = unchanged + known bad + changed
    changed            = valid + quarantined              (every changed record is validated)
    quarantine rows    = the new bad versions written     (<= quarantined: a version landed twice is written once)
    valid + revisited  = upsert candidates + duplicates collapsed
    upsert candidates  = inserted + updated + unchanged + refreshed
    Delta MERGE        : rows inserted = inserted, rows updated = updated + deleted + refreshed

Pure Python over counts, so every rule is tested without Spark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..errors import EtlError
from .results import EntityCounts, MergeOutcome

if TYPE_CHECKING:  # only read here: the counts come from what the steps returned
    from .prepare import Prepared
    from .read import LoadPlan


class ReconciliationError(EtlError):
    """A run's counts do not add up: something was lost or duplicated. The message lists each mismatch."""


def entity_counts(plan: LoadPlan, p: Prepared, quarantined: int, merged: MergeOutcome) -> EntityCounts:
    """An entity's reconciliation counts, from what each step returned (live rows: before + what the MERGE did)."""
    from .classify import CHANGED, KNOWN_BAD, UNCHANGED

    name, landing = p.spec.name, p.landing
    return EntityCounts(
        name,
        landed_pages=plan.pages[name],
        landed_records=plan.records[name],
        pages_read=landing.pages,
        records_read=landing.records,
        bronze_rows=p.bronze_written,
        bronze_read=p.validated,
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
        silver_live_rows=int(p.classes.get("live_before", 0)) + merged.live_change,
        unchanged_records=int(p.classes.get(UNCHANGED, 0)),
        known_bad_records=int(p.classes.get(KNOWN_BAD, 0)),
        changed_records=int(p.classes.get(CHANGED, 0)),
        revisited_records=p.revisited,
        refreshed=merged.refreshed,
    )


def _check(mismatches: list[str], entity: str, left_name: str, left: int, right_name: str, right: int) -> None:
    if left != right:
        mismatches.append(f"{entity}: {left_name} {left} != {right_name} {right}")


def reconcile(counts: EntityCounts) -> list[str]:
    """The mismatches of one entity of one run (empty: everything is accounted for)."""
    c, out = counts, list[str]()
    _check(out, c.entity, "landed pages (manifest)", c.landed_pages, "pages read", c.pages_read)
    _check(out, c.entity, "landed records (manifest)", c.landed_records, "records read", c.records_read)
    _check(
        out,
        c.entity,
        "records read",
        c.records_read,
        "unchanged + known bad + changed",
        c.unchanged_records + c.known_bad_records + c.changed_records,
    )
    _check(out, c.entity, "changed", c.changed_records, "records validated", c.bronze_read)
    _check(out, c.entity, "validated", c.bronze_read, "valid + quarantined", c.valid_rows + c.quarantined_rows)
    if c.quarantine_written > c.quarantined_rows:
        out.append(f"{c.entity}: quarantine rows written {c.quarantine_written} > quarantined {c.quarantined_rows}")
    if c.bronze_rows > c.changed_records:
        out.append(f"{c.entity}: bronze rows written {c.bronze_rows} > changed records {c.changed_records}")
    _check(
        out,
        c.entity,
        "valid + revisited",
        c.valid_rows + c.revisited_records,
        "upsert candidates + duplicates collapsed",
        c.upsert_candidates + c.duplicates_collapsed,
    )
    _check(
        out,
        c.entity,
        "upsert candidates",
        c.upsert_candidates,
        "inserted + updated + unchanged + refreshed",
        c.inserted + c.updated + c.unchanged + c.refreshed,
    )
    _check(out, c.entity, "planned inserts", c.inserted, "MERGE rows inserted", c.merge_inserted)
    _check(
        out,
        c.entity,
        "planned updates + deletions + refreshes",
        c.updated + c.deleted + c.refreshed,
        "MERGE rows updated",
        c.merge_updated,
    )
    return out


def reconcile_run(entities: Iterable[EntityCounts]) -> list[str]:
    return [problem for counts in entities for problem in reconcile(counts)]
