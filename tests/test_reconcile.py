"""Reconciliation rules: balanced counts pass; each broken rule is named with both numbers."""

import dataclasses

from multiverse_etl.transform.reconcile import EntityCounts, reconcile, reconcile_run, summary_table


def balanced() -> EntityCounts:
    """A run of 10 landed records: 1 quarantined, 1 duplicate, 8 candidates (3 inserted, 2 updated, 3 unchanged), 1 deleted."""
    return EntityCounts(
        "apprenticeships", landed_pages=2, landed_records=10, pages_read=2, records_read=10, bronze_rows=10, bronze_read=10,
        valid_rows=9, quarantined_rows=1, quarantine_written=1, duplicates_collapsed=1, upsert_candidates=8,
        inserted=3, updated=2, unchanged=3, deleted=1, merge_inserted=3, merge_updated=3, silver_live_rows=7,
    )


def test_balanced_counts_reconcile():
    assert reconcile(balanced()) == []


def test_every_broken_rule_is_reported_with_both_numbers():
    cases = {
        "landed_pages": ("apprenticeships: landed pages (manifest) 3 != pages read 2"),
        "records_read": ("apprenticeships: landed records (manifest) 10 != records read 11"),
        "bronze_rows": ("apprenticeships: records read 10 != bronze rows written 9"),
        "bronze_read": ("apprenticeships: bronze rows written 10 != bronze rows of the run 12"),
        "quarantine_written": ("apprenticeships: quarantined 1 != quarantine rows written 0"),
        "duplicates_collapsed": ("apprenticeships: valid 9 != upsert candidates + duplicates collapsed 10"),
        "unchanged": ("apprenticeships: upsert candidates 8 != inserted + updated + unchanged 9"),
        "merge_inserted": ("apprenticeships: planned inserts 3 != MERGE rows inserted 2"),
        "merge_updated": ("apprenticeships: planned updates + deletions 3 != MERGE rows updated 4"),
    }
    changed = {"landed_pages": 3, "records_read": 11, "bronze_rows": 9, "bronze_read": 12, "quarantine_written": 0,
               "duplicates_collapsed": 2, "unchanged": 4, "merge_inserted": 2, "merge_updated": 4}
    for field, message in cases.items():
        counts = dataclasses.replace(balanced(), **{field: changed[field]})
        assert message in reconcile(counts), field


def test_a_lost_record_breaks_the_bronze_equation():
    lost = dataclasses.replace(balanced(), bronze_read=9, valid_rows=8, upsert_candidates=7, unchanged=2)
    assert reconcile(lost) == ["apprenticeships: bronze rows written 10 != bronze rows of the run 9"]


def test_run_mismatches_cover_every_entity():
    bad = dataclasses.replace(balanced(), entity="projects", merge_inserted=0)
    assert reconcile_run([balanced(), bad]) == ["projects: planned inserts 3 != MERGE rows inserted 0"]


def test_summary_table_has_one_line_per_entity_and_the_verdict():
    bad = dataclasses.replace(balanced(), entity="projects", merge_inserted=0)
    lines = summary_table([("20260302T090000Z-a0a0a0", [balanced(), bad], ["projects: planned inserts 3 != MERGE rows inserted 0"])],
                          extra=["runs loaded: 1"])
    assert lines[0].split() == ["run", "entity", "landed", "bronze", "quarant.", "dupes", "inserted", "updated", "unchanged",
                                "deleted", "live", "ok"]
    assert lines[2].split() == ["20260302T090000Z-a0a0a0", "apprenticeships", "10", "10", "1", "1", "3", "2", "3", "1", "7", "yes"]
    assert lines[3].split()[1] == "projects" and lines[3].split()[-1] == "NO"
    assert lines[-1] == "runs loaded: 1"
