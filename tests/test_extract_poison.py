"""End to end (the extract only, no Spark): the replica with --poison serves hostile but valid JSON records among
the normal ones; the extraction completes, commits its manifest, and lands every poison record as served, with
every normal record exactly the ground truth. An id outside the 64-bit range is landed but not listed as a parent.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from decimal import Decimal

from multiverse_etl import jsonsafe
from multiverse_etl.extract import run_extract
from multiverse_etl.landing import committed_runs
from sample_api import poison
from sample_api.__main__ import _parser, _settings
from sample_api.dump import ground_truth
from support.extract import as_multiset, extract_config, start_api, storage_for
from support.recursion import recursion_limit

SCALE, SEED = 60, 31
POISON = {"apprenticeships": poison.APPRENTICESHIPS, "projects": poison.PROJECTS, "programmes": poison.PROGRAMMES}


def poison_ids(entity: str) -> set:
    return {jsonsafe.loads(row)["id"] for row in POISON[entity]}


def test_the_poison_flag_reaches_the_settings():
    assert _settings(_parser().parse_args(["serve", "--poison"])).poison is True
    assert _settings(_parser().parse_args(["serve"])).poison is False


def test_an_extraction_against_a_poisoned_api_completes_and_lands_the_poison_as_served(tmp_path):
    server = start_api(scale=SCALE, seed=SEED, poison=True, fault_rate=0.05, fault_seed=3)
    try:
        config = extract_config(str(tmp_path / "lake"), server.url, api={"page_size": 50, "concurrency": 4})
        result = run_extract(config)
    finally:
        server.stop()
    storage = storage_for(config)
    assert storage.exists(result.manifest_key)
    assert [run.run_id for run in committed_runs(storage)] == [result.run_id]

    texts: dict[str, bytes] = {}
    records: dict[str, list] = {entity: [] for entity in POISON}
    for entity, section in result.manifest.entities.items():
        texts[entity] = b"".join(gzip.decompress(storage.get(part.key)) for part in section.parts)
        for line in texts[entity].splitlines():
            with recursion_limit(10_000):  # valid JSON for an independent reader (the stdlib, numbers as text)
                doc = json.loads(line, parse_int=str, parse_float=Decimal)
            assert len(doc["fingerprints"]) == len(doc["data"])
            landed = jsonsafe.loads(line)
            parent = landed["parent"] and landed["parent"]["apprenticeship_id"]
            for record in landed["data"]:
                records[entity].append(record if parent is None else {**record, "apprenticeship_id": parent})

    for entity, rows in POISON.items():  # each poison record landed once, byte for byte as served
        for row in rows:
            assert texts[entity].count(row) == 1, (entity, row[:80])
    truth = ground_truth(SCALE, SEED, 0)
    for entity in POISON:
        normal = [r for r in records[entity] if r["id"] not in poison_ids(entity)]
        assert as_multiset(normal) == as_multiset(truth[entity]), entity
        landed_poison = Counter(r["id"] for r in records[entity] if r["id"] in poison_ids(entity))
        assert landed_poison == Counter(poison_ids(entity)), entity

    apprenticeships, projects = result.manifest.entity("apprenticeships"), result.manifest.entity("projects")
    assert apprenticeships.records == SCALE + len(poison.APPRENTICESHIPS)
    # 2**64, the 23-digit id and 2**63 are outside the lake's 64-bit keys: landed, never listed as parents.
    assert projects.parents_skipped == 3
    assert projects.parents == SCALE + len(poison.APPRENTICESHIPS) - 3
    assert {r["apprenticeship_id"] for r in records["projects"] if r["id"] in poison_ids("projects")} == {
        poison.POISON_PARENT
    }
