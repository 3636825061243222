"""Helpers for the extraction tests: an in-process sample API, configs, and reading a landing back.

Landing is compared with `sample_api.dump.ground_truth`: every record landed (projects with
the parent id the extractor recorded beside them) must equal the ground truth as a multiset.
"""

from __future__ import annotations

import gzip
from collections import Counter
from typing import Any, Iterator, Optional

import orjson

from multiverse_etl.config import Config
from multiverse_etl.landing import committed_runs, read_manifest
from multiverse_etl.storage import Storage, open_storage
from sample_api.dump import ground_truth
from sample_api.server import run_in_thread
from sample_api.settings import ServerSettings

from .config import make_config

PASSWORD = "mult1v3r53"
FAST_RETRIES = {"backoff_base_s": 0.01, "backoff_max_s": 0.2, "max_attempts": 12}


def start_api(**settings: Any):
    """The sample API in this process on a free 127.0.0.1 port (call .stop())."""
    return run_in_thread(ServerSettings(**settings))


def extract_config(
    lake_root: str,
    api_url: str,
    *,
    env: str = "local",
    api: Optional[dict] = None,
    extract: Optional[dict] = None,
    s3: Optional[dict] = None,
) -> Config:
    """The env's config pointed at a lake and an API, with test-sized pages and quick retries."""
    sections: dict[str, dict] = {
        "api": {"url": api_url, "page_size": 50, "concurrency": 8, **FAST_RETRIES, **(api or {})},
        "extract": {"progress_interval_s": 1.0, **(extract or {})},
    }
    if s3:
        sections["s3"] = s3
    return make_config(lake_root, env=env, **sections)


def landing_lines(storage: Storage, run_id: str) -> Iterator[dict[str, Any]]:
    """Every landing line of one run (as listed in its manifest, or all parts if none)."""
    manifest = read_manifest(storage, run_id)
    if manifest is not None:
        keys = [part.key for entity in manifest.entities.values() for part in entity.parts]
    else:
        keys = [o.key for o in storage.list("raw/") if f"run_id={run_id}/" in o.key]
    for key in keys:
        for line in gzip.decompress(storage.get(key)).splitlines():
            yield orjson.loads(line)


def landed_records(storage: Storage, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Records per entity as the ground truth shows them (projects with apprenticeship_id)."""
    records: dict[str, list[dict[str, Any]]] = {"apprenticeships": [], "projects": [], "programmes": []}
    for line in landing_lines(storage, run_id):
        if line["entity"] == "projects":
            parent = line["parent"]["apprenticeship_id"]
            records["projects"].extend({**r, "apprenticeship_id": parent} for r in line["data"])
        else:
            records[line["entity"]].extend(line["data"])
    return records


def as_multiset(records: list[dict[str, Any]]) -> Counter:
    return Counter(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


def assert_matches_ground_truth(
    storage: Storage, run_id: str, scale: int, seed: int, generation: int = 0, corrupt_rate: float = 0.0
) -> dict[str, list[dict[str, Any]]]:
    """Exactly the ground truth: nothing missing, nothing duplicated, nothing extra."""
    truth = ground_truth(scale, seed, generation, corrupt_rate)
    landed = landed_records(storage, run_id)
    for entity in ("apprenticeships", "projects", "programmes"):
        want, got = as_multiset(truth[entity]), as_multiset(landed[entity])
        missing, extra = want - got, got - want
        assert not missing and not extra, (
            f"{entity}: {sum(missing.values())} missing, {sum(extra.values())} duplicated/extra "
            f"(landed {len(landed[entity])}, truth {len(truth[entity])})"
        )
    return landed


def storage_for(config: Config) -> Storage:
    return open_storage(config.lake.root, config.s3)


def only_committed_run(storage: Storage) -> dict[str, Any]:
    runs = list(committed_runs(storage))
    assert len(runs) == 1, [r.run_id for r in runs]
    return runs[0].to_json()
