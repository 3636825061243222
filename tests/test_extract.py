"""The extractor end to end against the sample API: exact ground truth with faults, manifest, incremental, resume."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from multiverse_etl.config import load_config
from multiverse_etl.extract import ResumeError, RetryBudgetExhausted, run_extract
from multiverse_etl.extract.state import read_watermark
from multiverse_etl.landing import committed_runs
from sample_api.dump import ground_truth
from sample_api.server import run_in_thread
from sample_api.settings import ServerSettings
from support.extract import (
    PASSWORD,
    as_multiset,
    assert_matches_ground_truth,
    extract_config,
    landed_records,
    landing_lines,
    only_committed_run,
    start_api,
    storage_for,
)

ROOT = Path(__file__).resolve().parents[1]
FAULTS = dict(fault_rate=0.08, drop_rate=0.04, token_ttl=60, max_page_size=20, rate_limit=500.0, fault_seed=11)


def test_exact_ground_truth_with_faults_on_a_local_folder(tmp_path):
    server = start_api(scale=300, seed=21, **FAULTS)
    try:
        config = extract_config(str(tmp_path / "lake"), server.url, api={"page_size": 50, "concurrency": 16})
        result = run_extract(config)
    finally:
        server.stop()
    storage = storage_for(config)
    assert_matches_ground_truth(storage, result.run_id, 300, 21)
    manifest = result.manifest
    assert manifest.retries > 0 and (manifest.logins or 0) > 1  # the faults really happened
    assert manifest.entity("apprenticeships").pages == 15  # the cap of 20, learnt and kept
    assert only_committed_run(storage)["run_id"] == result.run_id


def test_exact_ground_truth_with_faults_on_local_s3(s3_config):
    server = start_api(scale=250, seed=22, **FAULTS)
    try:
        config = extract_config(
            s3_config.lake.root + "/extract-faults",
            server.url,
            env="local-s3",
            s3=dataclasses.asdict(s3_config.s3),
            api={"concurrency": 16},
        )
        result = run_extract(config)
    finally:
        server.stop()
    storage = storage_for(config)
    assert_matches_ground_truth(storage, result.run_id, 250, 22)
    part = result.manifest.entity("projects").parts[0].key
    head = storage.client.head_object(Bucket=storage.bucket, Key=storage._key(part))
    assert head["ServerSideEncryption"] == "AES256"
    assert storage.exists(result.manifest_key)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """One fault-free run of scale 200 (small pages, small parts) shared by the manifest checks."""
    lake = tmp_path_factory.mktemp("clean")
    server = start_api(scale=200, seed=23)
    try:
        config = extract_config(str(lake), server.url, api={"page_size": 30}, extract={"part_max_bytes": 4096})
        result = run_extract(config)
    finally:
        server.stop()
    return config, result


def test_the_manifest_accounts_for_every_part_page_and_record(clean_run):
    config, result = clean_run
    storage = storage_for(config)
    truth = ground_truth(200, 23, 0)
    manifest = json.loads(storage.get(result.manifest_key))
    assert manifest == result.manifest.to_json()  # written as returned
    assert manifest["status"] == "committed" and manifest["manifest_version"] == 1 and manifest["mode"] == "full"
    assert manifest["modified_after"] is None and manifest["watermark_before"] is None
    assert manifest["watermark_after"] == max(a["modified_date"] for a in truth["apprenticeships"])
    assert read_watermark(storage) == manifest["watermark_after"]
    entities = manifest["entities"]
    assert entities["apprenticeships"]["complete_listing"] and entities["projects"]["complete_listing"]
    assert entities["projects"]["parents"] == 200 and entities["projects"]["parents_skipped"] == 0
    assert len(entities["projects"]["parts"]) > 2  # rolled at 4 KB
    for name, entity in entities.items():
        assert entity["records"] == len(truth[name]) == sum(p["records"] for p in entity["parts"])
        assert entity["pages"] == sum(p["pages"] for p in entity["parts"])
        assert entity["requests"] >= entity["pages"]
        for part in entity["parts"]:
            assert len(storage.get(part["key"])) == part["bytes"]
    listed = sorted(o.key for o in storage.list("raw/") if o.key.endswith(".jsonl.gz"))
    assert listed == sorted(p["key"] for e in entities.values() for p in e["parts"])
    assert manifest["requests"] == sum(e["requests"] for e in entities.values()) + manifest["logins"]


def test_every_page_is_landed_with_its_lineage_even_empty_ones(clean_run):
    config, result = clean_run
    lines = list(landing_lines(storage_for(config), result.run_id))
    truth = ground_truth(200, 23, 0)
    projects_per_parent = {a["id"]: 0 for a in truth["apprenticeships"]}
    for p in truth["projects"]:
        projects_per_parent[p["apprenticeship_id"]] += 1
    project_lines = [line for line in lines if line["entity"] == "projects"]
    first_pages = {line["parent"]["apprenticeship_id"]: line for line in project_lines if line["page_index"] == 0}
    assert set(first_pages) == set(projects_per_parent)  # every parent listed, once
    assert len(first_pages) == len([line for line in project_lines if line["page_index"] == 0])
    empty = [pid for pid, n in projects_per_parent.items() if n == 0]
    assert empty and all(first_pages[pid]["data"] == [] for pid in empty)
    multi = [pid for pid, n in projects_per_parent.items() if n > 30]
    assert multi  # some parent's projects span several pages
    for line in lines:
        assert line["run_id"] == result.run_id
        assert line["extracted_at"].endswith("Z")
        assert "pagination_token" not in line["request"]["params"]
        assert set(line["pagination"]) == {"next_token", "previous_token", "page_size"}
        if line["entity"] == "projects":
            assert line["request"]["path"] == f"/apprenticeships/{line['parent']['apprenticeship_id']}/projects"
        else:
            assert line["parent"] is None
    for pid in multi:
        pages = sorted(line["page_index"] for line in project_lines if line["parent"]["apprenticeship_id"] == pid)
        assert pages == list(range(len(pages))) and len(pages) > 1


def test_incremental_run_lands_every_changed_and_new_apprenticeship(tmp_path):
    scale, seed = 200, 24
    gen0 = ground_truth(scale, seed, 0)
    gen1 = ground_truth(scale, seed, 1)
    server = start_api(scale=scale, seed=seed, generation=0)
    config = extract_config(str(tmp_path / "lake"), server.url, extract={"lookback_seconds": 3600})
    try:
        first = run_extract(config)
    finally:
        server.stop()
    server = start_api(scale=scale, seed=seed, generation=1)
    try:
        second = run_extract(
            dataclasses.replace(config, api=dataclasses.replace(config.api, url=server.url)), mode="incremental"
        )
        changed_only = run_extract(
            dataclasses.replace(
                config,
                api=dataclasses.replace(config.api, url=server.url),
                extract=dataclasses.replace(config.extract, projects_scope="changed"),
            ),
            mode="incremental",
        )
    finally:
        server.stop()
    storage = storage_for(config)
    manifest = second.manifest
    assert manifest.mode == "incremental" and manifest.projects_scope == "all"
    assert manifest.watermark_before == first.manifest.watermark_after
    wm = first.manifest.watermark_after
    assert wm is not None
    one_hour_before = dt.datetime.fromisoformat(wm) - dt.timedelta(hours=1)
    assert manifest.modified_after == one_hour_before.strftime("%Y-%m-%dT%H:%M:%S")  # the API's own format
    new_or_changed = as_multiset(gen1["apprenticeships"]) - as_multiset(gen0["apprenticeships"])
    assert new_or_changed
    landed = landed_records(storage, second.run_id)
    assert not new_or_changed - as_multiset(landed["apprenticeships"])
    assert len(landed["apprenticeships"]) < scale  # it really was incremental
    assert not manifest.entity("apprenticeships").complete_listing
    # projects_scope "all": every apprenticeship of generation 1 had its projects listed
    assert as_multiset(landed["projects"]) == as_multiset(gen1["projects"])
    assert manifest.entity("projects").parents == len(gen1["apprenticeships"])
    # the listing that only discovers parents counts its requests under its own name, not under projects'
    assert manifest.client is not None and changed_only.manifest.client is not None
    by_name = manifest.client["requests_by_name"]
    assert by_name["parents"] >= 1 and by_name["projects"] == manifest.entity("projects").requests
    assert by_name["projects"] >= len(gen1["apprenticeships"])
    assert "parents" not in changed_only.manifest.client["requests_by_name"]
    assert manifest.watermark_after == max(a["modified_date"] for a in gen1["apprenticeships"])
    # projects_scope "changed": only the parents landed in this run
    changed = changed_only.manifest
    landed_changed = landed_records(storage, changed_only.run_id)
    assert changed.entity("projects").parents == len({a["id"] for a in landed_changed["apprenticeships"]})
    assert {p["apprenticeship_id"] for p in landed_changed["projects"]} <= {
        a["id"] for a in landed_changed["apprenticeships"]
    }
    assert not changed.entity("projects").complete_listing
    assert [r.run_id for r in committed_runs(storage)] == sorted([first.run_id, second.run_id, changed_only.run_id])


def test_a_failed_run_resumed_in_process_gives_exactly_the_ground_truth(tmp_path):
    scale, seed = 300, 25
    server = start_api(scale=scale, seed=seed, fault_rate=0.15, fault_seed=3)
    try:
        config = extract_config(
            str(tmp_path / "lake"),
            server.url,
            api={"concurrency": 4, "retry_budget": 12},
            extract={"part_max_bytes": 2048},
        )
        with pytest.raises(RetryBudgetExhausted):
            run_extract(config)
        storage = storage_for(config)
        assert list(committed_runs(storage)) == []
        run_id = next(storage.list("_state/extract_runs/")).key.rsplit("/", 1)[1][: -len(".json")]
        kept = sorted(o.key for o in storage.list("raw/projects/"))
        assert kept, "the failed attempt should have committed some project parts"
        healthy = dataclasses.replace(config, api=dataclasses.replace(config.api, retry_budget=100_000))
        with pytest.raises(ResumeError, match="started in full mode"):
            run_extract(healthy, mode="incremental", resume_run_id=run_id)
        result = run_extract(healthy, resume_run_id=run_id)
    finally:
        server.stop()
    assert result.run_id == run_id and result.manifest.attempt == 2
    assert_matches_ground_truth(storage, run_id, scale, seed)
    assert set(kept) <= {p.key for p in result.manifest.entity("projects").parts}
    assert result.manifest.entity("projects").parents == scale
    with pytest.raises(ResumeError, match="already committed"):
        run_extract(healthy, resume_run_id=run_id)
    with pytest.raises(ResumeError, match="no run 20200101T000000Z-abcdef"):
        run_extract(healthy, resume_run_id="20200101T000000Z-abcdef")


def test_a_server_restart_mid_run_loses_and_duplicates_nothing(tmp_path):
    scale, seed = 300, 26
    settings = ServerSettings(scale=scale, seed=seed, latency_ms=15)
    server = run_in_thread(settings)
    config = extract_config(
        str(tmp_path / "lake"), server.url, api={"page_size": 10, "concurrency": 4}, extract={"part_max_bytes": 2048}
    )
    restarted = threading.Event()

    def restart_soon():
        nonlocal server
        time.sleep(0.6)
        port = server.port
        server.stop()
        server = run_in_thread(settings, port=port)  # a new pagination key: every old token is dead
        restarted.set()

    thread = threading.Thread(target=restart_soon)
    thread.start()
    try:
        result = run_extract(config)
    finally:
        thread.join()
        server.stop()
    assert restarted.is_set()
    assert_matches_ground_truth(storage_for(config), result.run_id, scale, seed)


def test_secrets_never_reach_logs_manifests_state_or_landing(tmp_path, caplog):
    server = start_api(scale=120, seed=27, token_ttl=25)
    issued: list[str] = []
    access = server.app.service.access
    original_issue = access.issue
    access.issue = lambda: issued.append(original_issue()) or issued[-1]  # record what the server hands out
    try:
        config = extract_config(str(tmp_path / "lake"), server.url)
        with caplog.at_level(logging.DEBUG):
            run_extract(config)
            wrong = dataclasses.replace(config, api=dataclasses.replace(config.api, password="not-" + PASSWORD))
            with pytest.raises(Exception) as failure:
                run_extract(wrong)
    finally:
        server.stop()
    assert len(issued) > 2
    secrets = [PASSWORD, "not-" + PASSWORD] + issued
    texts = {"logs": caplog.text, "failure": str(failure.value) + repr(failure.value)}
    for path in (tmp_path / "lake").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            texts[str(path)] = (gzip.decompress(data) if path.suffix == ".gz" else data).decode()
    assert any("raw/_manifests" in name for name in texts) and any(".jsonl.gz" in name for name in texts)
    for name, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {name}"


def run_job(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "extract.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_the_job_fails_with_one_clear_line_on_a_wrong_password(tmp_path):
    server = start_api(scale=20, seed=28)
    try:
        done = run_job(
            "--env",
            "local",
            "--lake-root",
            str(tmp_path / "lake"),
            "--api-url",
            server.url,
            env={"MV_API_PASSWORD": "wrong-password-123"},
        )
    finally:
        server.stop()
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "refused" in errors[0] and "Invalid username or password" in errors[0]
    assert "Traceback" not in done.stderr and "wrong-password-123" not in done.stderr + done.stdout
    assert not (tmp_path / "lake").exists()  # nothing touched before the login worked


def test_job_flags_become_config_overrides(tmp_path):
    import argparse

    from multiverse_etl.cli import base_parser, load_job_config
    from multiverse_etl.extract import add_extract_arguments, extract_overrides

    parser = add_extract_arguments(base_parser("extract", "test"))
    args = parser.parse_args(
        [
            "--env",
            "local",
            "--lake-root",
            str(tmp_path),
            "--api-url",
            "http://127.0.0.1:9",
            "--mode",
            "incremental",
            "--resume",
            "20261127T033400Z-1a2b3c",
            "--set",
            "api.concurrency=7",
        ]
    )
    config = load_job_config(args, extract_overrides(args))
    assert config.api.url == "http://127.0.0.1:9" and config.extract.mode == "incremental"
    assert config.api.concurrency == 7 and config.lake.root == str(tmp_path) and args.resume.endswith("1a2b3c")
    assert extract_overrides(argparse.Namespace()) == {"api.url": None, "extract.mode": None}
    assert load_config("local", environ={}).extract.projects_scope == "all"


def test_corrupt_source_records_are_landed_as_served_and_unusable_parent_ids_counted(tmp_path):
    from multiverse_etl.extract.parents import parent_id

    server = start_api(scale=300, seed=29, corrupt_rate=0.1)
    try:
        config = extract_config(str(tmp_path / "lake"), server.url)
        result = run_extract(config)
    finally:
        server.stop()
    truth = ground_truth(300, 29, 0, corrupt_rate=0.1)
    landed = landed_records(storage_for(config), result.run_id)
    for entity in ("apprenticeships", "programmes"):
        assert as_multiset(landed[entity]) == as_multiset(truth[entity])  # broken rows too, untouched
    reachable = {a["id"] for a in truth["apprenticeships"] if parent_id(a) is not None}
    unusable = len(truth["apprenticeships"]) - len(reachable)
    assert unusable > 0 and result.manifest.entity("projects").parents_skipped == unusable
    assert as_multiset(landed["projects"]) == as_multiset(
        [p for p in truth["projects"] if p["apprenticeship_id"] in reachable]
    )

    def real_date(value) -> bool:
        try:
            return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").year > 1
        except (TypeError, ValueError):
            return False

    dates = [a.get("modified_date") for a in truth["apprenticeships"]]
    assert not all(map(real_date, dates))  # some are broken ("yesterday", "2024-02-30T25:61:00", ...)
    assert result.manifest.watermark_after == max(d for d in dates if real_date(d))  # none became the watermark
