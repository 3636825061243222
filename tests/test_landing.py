"""The landing contract as types: a manifest survives its JSON, an unknown version is refused, one line format."""

import json

import pytest

from multiverse_etl.landing import (
    EntityManifest,
    LandingError,
    Manifest,
    Part,
    landing_line,
    read_manifest,
    write_manifest,
)
from multiverse_etl.storage import LocalStorage

RUN = "20261127T033400Z-1a2b3c"


def manifest(**fields) -> Manifest:
    parts = (Part(f"raw/projects/ingest_date=2026-11-27/run_id={RUN}/part-00000.jsonl.gz", 3, 7, 120),)
    entities = {
        "apprenticeships": EntityManifest(pages=1, records=2, complete_listing=True),
        "projects": EntityManifest(
            pages=3, records=7, complete_listing=False, parts=parts, requests=3, retries=1, parents=2, parents_skipped=0
        ),
    }
    return Manifest(
        run_id=RUN,
        mode="incremental",
        started_at="2026-11-27T03:34:00.000000Z",
        finished_at="2026-11-27T03:35:00.000000Z",
        entities=entities,
        **fields,
    )


def test_a_manifest_is_written_and_read_back_whole(tmp_path):
    storage = LocalStorage(str(tmp_path))
    written = manifest(api_url="http://api", logins=2, client={"requests": 9, "status": {"200": 9}})
    write_manifest(storage, written)
    back = read_manifest(storage, RUN)
    assert back == written and back.client == {"requests": 9, "status": {"200": 9}}
    doc = json.loads(storage.get(f"raw/_manifests/{RUN}.json"))
    assert doc["manifest_version"] == 1 and doc["status"] == "committed" and doc["client"]["requests"] == 9
    assert doc["entities"]["projects"]["parts"][0] == {
        "key": written.entities["projects"].parts[0].key,
        "pages": 3,
        "records": 7,
        "bytes": 120,
    }
    assert "parents" not in doc["entities"]["apprenticeships"]  # only the fanned-out entity has parents


def test_optional_keys_are_left_out_when_unset():
    doc = manifest().to_json()
    assert not {"api_url", "duration_s", "logins", "client"} & set(doc)


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_a_manifest_of_an_unknown_version_is_refused_by_name(version):
    doc = {**manifest().to_json(), "manifest_version": version}
    with pytest.raises(LandingError, match=f"run {RUN}: manifest_version {version!r} is not supported"):
        Manifest.from_json(doc)


def test_a_malformed_manifest_is_a_landing_error_not_a_crash():
    doc = manifest().to_json()
    doc["entities"]["projects"] = {"pages": "many"}
    with pytest.raises(LandingError, match="the manifest is malformed"):
        Manifest.from_json(doc)
    with pytest.raises(LandingError, match="must be a JSON object"):
        Manifest.from_json([])  # type: ignore[arg-type]


def test_an_entity_the_run_did_not_land_counts_as_empty_and_incomplete():
    missing = manifest().entity("programmes")
    assert (missing.pages, missing.records, missing.complete_listing, missing.parts) == (0, 0, False, ())


def test_a_landing_line_is_the_lineage_then_the_page_spliced_in_as_served():
    payload = b'{"data":[{"id":1,"name":" x\\u00e9 "}],"pagination":{"next_token":null}}'
    line = landing_line(
        "projects",
        RUN,
        "2026-11-27T03:34:00.123456Z",
        0,
        "/apprenticeships/17/projects",
        {"page_size": 1000},
        {"apprenticeship_id": 17},
        payload,
    )
    assert line.endswith(b"}\n") and line.count(b"\n") == 1
    assert payload[1:] in line  # the served bytes, untouched
    assert json.loads(line) == {
        "entity": "projects",
        "run_id": RUN,
        "extracted_at": "2026-11-27T03:34:00.123456Z",
        "page_index": 0,
        "request": {"path": "/apprenticeships/17/projects", "params": {"page_size": 1000}},
        "parent": {"apprenticeship_id": 17},
        "data": [{"id": 1, "name": " xé "}],
        "pagination": {"next_token": None},
    }


def test_a_records_fingerprint_ignores_spacing_and_key_order_but_not_values_or_its_parent():
    import json

    from multiverse_etl.landing import record_fingerprint

    served = json.loads('{"id": 12, "name": "Zoé", "tags": {"b": 1, "a": [1, 2]}}')
    reordered = json.loads('{"tags":{"a":[1,2],"b":1},"name":"Zo\\u00e9","id":12}')
    assert record_fingerprint(served, 7) == record_fingerprint(reordered, 7)
    assert record_fingerprint(served, 7) != record_fingerprint(served, 8) != record_fingerprint(served, None)
    assert record_fingerprint(served, 7) != record_fingerprint({**served, "id": 13}, 7)
    assert record_fingerprint({"id": 1}, None) != record_fingerprint({"id": 1.0}, None)  # 1.0 is another value
    huge = record_fingerprint({"id": 10**40, "s": "\ud800"}, None)  # beyond 64 bits, a lone surrogate: no crash
    assert isinstance(huge, int) and -(2**63) <= huge < 2**63


def test_fingerprints_are_the_scheme_restated_one_record_or_a_page_at_a_time():
    """blake2b-64 of the sorted compact JSON, a NUL and the parent's id as text: the values the lake keeps."""
    import hashlib

    from multiverse_etl import jsonsafe
    from multiverse_etl.landing import record_fingerprint, record_fingerprints

    def scheme(record, parent):
        try:
            canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate: written escaped (jsonsafe)
            canonical = jsonsafe.dumps(record, sort_keys=True)
        digest = hashlib.blake2b(canonical + b"\0" + str(parent).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    records = [{"id": 1, "name": "Zoé", "b": [1, {"y": 2, "x": None}]}, {"id": 10**40}, {"s": "\ud800"}, {}]
    for parent in (17, None, "A-9"):
        expected = [scheme(r, parent) for r in records]
        assert record_fingerprints(records, parent) == expected
        assert [record_fingerprint(r, parent) for r in records] == expected
    assert record_fingerprints([], 3) == []


def test_a_landing_digest_is_the_same_whatever_the_order_of_pages_and_records():
    from multiverse_etl.landing import LandingDigest, landing_line, record_fingerprint

    def line(parent, records):
        payload = json.dumps({"data": records, "pagination": {}}, separators=(",", ":")).encode()
        prints = [record_fingerprint(r, parent) for r in records]
        return landing_line("projects", "r", "t", 0, "/p", {}, {"apprenticeship_id": parent}, payload, prints)

    a, b, c = {"id": 1}, {"id": 2}, {"id": 3}
    one, two = LandingDigest(), LandingDigest()
    for text in (line(1, [a, b]), line(2, [c]), line(3, [])):
        assert one.add_line(text)
    for text in (line(3, []), line(2, [c]), line(1, [b, a])):
        two.add_line(text)
    assert one.text() == two.text()
    three = LandingDigest()
    for text in (line(1, [a, b]), line(2, [c])):  # parent 3's empty listing is missing: another landing
        three.add_line(text)
    assert three.text() != one.text()
    assert not LandingDigest().add_line(b'{"entity":"projects","data":[]}\n')  # a line without fingerprints
