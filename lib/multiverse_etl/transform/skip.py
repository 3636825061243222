"""Entities a run need not read at all: landed exactly as the last loaded run landed them, onto an unmoved lake.

The extractor records each entity's `LandingDigest` in the manifest (its records' fingerprints and empty
listings, order-independent). When a run's digest of an entity, and whether its listing is complete, equal those
of the last loaded run, and no silver or quarantine table moved since that run was loaded (same Delta versions,
same `RULES_VERSION`), loading the entity again would change nothing: its records are all unchanged or known bad,
and whatever its listing proves gone is gone already. The entity is then not read; its counts are carried from
that run (its bad records are all known bad now). A child entity (projects) is skipped only with its parent:
a parent's deletions cascade to children, and a child's complete listing proves parents present.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ..entities import EntitySpec
from . import classify
from .classify import CHANGED, KNOWN_BAD, UNCHANGED, UNSEEN

RULES_KEY = "rules_version"


@dataclass(frozen=True)
class LoadedRun:
    """What the audit row of the last loaded run says about its landing and the lake it left."""

    run_id: str
    digests: Mapping[str, str] = field(default_factory=dict)  # entity -> "digest|complete" (`landing_key`)
    versions: Mapping[str, int] = field(default_factory=dict)  # silver/quarantine table -> version, rules version
    entities: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # entity -> its audit counts


def landing_key(digest: Optional[str], complete: bool) -> Optional[str]:
    """What must be equal for two landings of an entity to load the same (None: the digest is unknown)."""
    return None if digest is None else f"{digest}|{'complete' if complete else 'partial'}"


def lake_versions(versions: Mapping[str, int]) -> dict[str, int]:
    return {**versions, RULES_KEY: classify.RULES_VERSION}


def skippable(
    order: tuple[EntitySpec, ...],
    keys: Mapping[str, Optional[str]],
    previous: Optional[LoadedRun],
    versions_now: Mapping[str, int],
) -> set[str]:
    """The entities of a run that need no reading (parents before children in `order`)."""
    now = lake_versions(versions_now)
    # The row may record more tables than decide skipping (gold's versions, for its counts): compared on these.
    if previous is None or {name: previous.versions.get(name) for name in now} != now:
        return set()
    skipped: set[str] = set()
    for spec in order:
        key = keys.get(spec.name)
        same = key is not None and previous.digests.get(spec.name) == key and spec.name in previous.entities
        if same and (spec.parent is None or spec.parent in skipped):
            skipped.add(spec.name)
    return skipped


def carried_classes(counts: Mapping[str, Any]) -> dict[str, int]:
    """A skipped entity's classification, from the identical run's audit counts."""
    landed = int(counts.get("landed_records") or 0)
    bad = int(counts.get("known_bad_records") or 0) + int(counts.get("quarantined_rows") or 0)
    return {
        UNCHANGED: landed - bad,
        KNOWN_BAD: bad,
        CHANGED: 0,
        UNSEEN: 0,
        "copies": 0,
        "live_before": int(counts.get("silver_live_rows") or 0),
    }
