"""Reconciliation rules: balanced counts pass; each broken rule is named with both numbers."""

import dataclasses

from multiverse_etl.transform.reconcile import reconcile, reconcile_run
from multiverse_etl.transform.results import EntityCounts


def balanced() -> EntityCounts:
    """A run of 12 landed records: 1 unchanged, 1 known bad, 10 changed; of those 1 quarantined and 9 valid,
    with 1 revisit (an unchanged record of a changed key): 10 ranked, 1 duplicate, 9 candidates
    (3 inserted, 2 updated, 3 unchanged, 1 refreshed); 1 deleted."""
    return EntityCounts(
        "apprenticeships",
        landed_pages=2,
        landed_records=12,
        pages_read=2,
        records_read=12,
        bronze_rows=10,
        bronze_read=10,
        valid_rows=9,
        quarantined_rows=1,
        quarantine_written=1,
        duplicates_collapsed=1,
        upsert_candidates=9,
        inserted=3,
        updated=2,
        unchanged=3,
        deleted=1,
        merge_inserted=3,
        merge_updated=4,
        silver_live_rows=7,
        unchanged_records=1,
        known_bad_records=1,
        changed_records=10,
        revisited_records=1,
        refreshed=1,
    )


def test_balanced_counts_reconcile():
    assert reconcile(balanced()) == []


def test_every_broken_rule_is_reported_with_both_numbers():
    cases = {
        "landed_pages": ("apprenticeships: landed pages (manifest) 3 != pages read 2"),
        "records_read": ("apprenticeships: landed records (manifest) 12 != records read 13"),
        "unchanged_records": ("apprenticeships: records read 12 != unchanged + known bad + changed 13"),
        "bronze_read": ("apprenticeships: changed 10 != records validated 11"),
        "quarantined_rows": ("apprenticeships: validated 10 != valid + quarantined 11"),
        "quarantine_written": ("apprenticeships: quarantine rows written 2 > quarantined 1"),
        "bronze_rows": ("apprenticeships: bronze rows written 11 > changed records 10"),
        "duplicates_collapsed": (
            "apprenticeships: valid + revisited 10 != upsert candidates + duplicates collapsed 11"
        ),
        "unchanged": ("apprenticeships: upsert candidates 9 != inserted + updated + unchanged + refreshed 10"),
        "merge_inserted": ("apprenticeships: planned inserts 3 != MERGE rows inserted 2"),
        "merge_updated": ("apprenticeships: planned updates + deletions + refreshes 4 != MERGE rows updated 5"),
    }
    changed = {
        "landed_pages": 3,
        "records_read": 13,
        "unchanged_records": 2,
        "bronze_read": 11,
        "quarantined_rows": 2,
        "quarantine_written": 2,
        "bronze_rows": 11,
        "duplicates_collapsed": 2,
        "unchanged": 4,
        "merge_inserted": 2,
        "merge_updated": 5,
    }
    for field, message in cases.items():
        counts = dataclasses.replace(balanced(), **{field: changed[field]})
        assert message in reconcile(counts), (field, reconcile(counts))


def test_a_record_lost_between_classification_and_validation_breaks_the_changed_equation():
    lost = dataclasses.replace(balanced(), bronze_read=9, valid_rows=8, upsert_candidates=8, unchanged=2)
    assert reconcile(lost) == ["apprenticeships: changed 10 != records validated 9"]


def test_run_mismatches_cover_every_entity():
    bad = dataclasses.replace(balanced(), entity="projects", merge_inserted=0)
    assert reconcile_run([balanced(), bad]) == ["projects: planned inserts 3 != MERGE rows inserted 0"]
