"""Bad input: corrupt source records, broken landing files, HTML instead of JSON, bad config values.

* Corrupt records (`--corrupt-rate`): they land in `silver/quarantine` with the reason their
  corruption implies, never in silver, and the run still reconciles. Checked on the shared faulted
  run (support.scenarios.faulted_pipeline_run).
* A landing part whose last line is cut (not JSON any more): the transform FAILS the run (it does
  not quarantine the page) with a message naming the file, and loads nothing of that run; once the
  file is repaired the run loads completely, once.
* An API answering HTML (a proxy's error page) with 200: retried, then reported.
* A bad config value names its key, before anything starts.
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import json
import subprocess
import threading
from collections import Counter
from contextlib import contextmanager

import pytest

from multiverse_etl.errors import EtlError
from multiverse_etl.extract import RetryBudgetExhausted, run_extract
from multiverse_etl.extract.http.policy import RetryPolicy
from multiverse_etl.lake import Lake
from multiverse_etl.landing import committed_runs
from multiverse_etl.transform import LandingReadError, run_transform
from multiverse_etl.transform.tables import read_table
from sample_api.corrupt import corruption_of
from sample_api.dump import ground_truth
from support.extract import assert_matches_ground_truth, extract_config, start_api, storage_for
from support.lake import assert_lake_matches, row_counts
from support.oracle import REASON_OF_KIND, canonical, reference_lake
from support.processes import job_command, job_env
from support.scenarios import with_sections

SINGULAR = {"apprenticeships": "apprenticeship", "projects": "project", "programmes": "programme"}


@pytest.fixture(scope="module")
def run(faulted_run):
    return faulted_run


# ---------------------------------------------------------------- corrupt source records


def implied_reason(entity: str, clean: dict, served: dict, kind: str) -> str:
    """The quarantine reason the sample API's corruption kind must give (sample_api/corrupt.py)."""
    if kind == "missing_field":
        (field,) = set(clean) - set(served)
        return REASON_OF_KIND[kind].format(field=field)
    if kind == "wrong_type":
        (field,) = [k for k in clean if type(clean[k]) is not type(served[k])]
        return REASON_OF_KIND[kind].format(field=field)
    return REASON_OF_KIND[kind]


def corrupted_records(scale: int, seed: int, rate: float) -> list[tuple[str, str, str, str]]:
    """(entity, kind, canonical served record, implied reason) of every corrupted record that can be landed."""
    clean, served = ground_truth(scale, seed, 0), ground_truth(scale, seed, 0, rate)
    parents = {a["id"] for a in served["apprenticeships"] if type(a.get("id")) is int}
    found = []
    for entity in ("apprenticeships", "projects", "programmes"):
        for good, bad in zip(clean[entity], served[entity], strict=True):
            kind = corruption_of(SINGULAR[entity], good["id"], seed, rate)
            if kind is None:
                assert good == bad
                continue
            parent = None
            if entity == "projects":
                parent = bad.pop("apprenticeship_id")
                good = {k: v for k, v in good.items() if k != "apprenticeship_id"}
                if parent not in parents:
                    continue  # its apprenticeship's id is unusable: nobody can list these projects
            found.append((entity, kind, canonical(bad, parent), implied_reason(entity, good, bad, kind)))
    return found


def test_corrupt_records_are_quarantined_with_the_reason_their_corruption_implies(run, spark):
    expected = corrupted_records(run.scale, run.seed, run.corrupt_rate)
    assert {kind for _, kind, _, _ in expected} == {
        "missing_field",
        "wrong_type",
        "bad_date",
        "null_id",
        "unknown_status",
    }
    quarantine = read_table(spark, Lake.of(run.config), "silver/quarantine").collect()
    got = Counter(
        (
            r.entity,
            canonical(json.loads(r.raw_record), r.parent_apprenticeship_id if r.entity == "projects" else None),
            tuple(r.reasons),
        )
        for r in quarantine
    )
    want = Counter((entity, record, (reason,)) for entity, _, record, reason in expected)
    assert got == want, f"missing: {list((want - got).items())[:3]}; unexpected: {list((got - want).items())[:3]}"
    assert all(r.run_id == run.extract.run_id and r.landing_file.startswith("raw/") for r in quarantine)  # lineage kept


def test_the_run_reconciles_with_its_quarantined_records(run):
    (report,) = run.transform.runs
    assert report.mismatches == []
    for counts in report.entities:
        expected = run.reference.expected_records(counts.entity)
        quarantined = sum(run.reference.quarantine[counts.entity].values())
        assert counts.landed_records == counts.records_read == counts.bronze_rows == counts.bronze_read == expected
        assert counts.quarantined_rows == counts.quarantine_written == quarantined > 0, counts.entity
        assert counts.valid_rows == expected - quarantined == counts.inserted == counts.silver_live_rows, counts.entity
    reasons = Counter()
    for entity, records in run.reference.quarantine.items():
        for (_record, why), n in records.items():
            for reason in why:
                reasons[f"{entity}/{reason}"] += n
    assert report.quarantine_reasons == dict(reasons)


# ---------------------------------------------------------------- broken landing files


@pytest.fixture
def small_landing(tmp_path):
    server = start_api(scale=60, seed=52)
    try:
        config = extract_config(
            str(tmp_path / "lake"), server.url, api={"page_size": 20}, extract={"part_max_bytes": 1024}
        )
        result = run_extract(config)
    finally:
        server.stop()
    return with_sections(config, transform={"shuffle_partitions": 2}), result


def test_a_landing_part_cut_short_fails_the_run_by_name_loads_nothing_and_loads_once_repaired(spark, small_landing):
    """The last projects part of a real multi-part landing loses half of its last line (valid gzip, broken JSON).

    (Not-JSON text and truncated gzip streams are covered by tests/test_read.py and tests/test_transform.py.)
    """
    config, extracted = small_landing
    storage = storage_for(config)
    parts = [p.key for p in extracted.manifest.entity("projects").parts]
    assert len(parts) >= 3
    key, original = parts[-1], storage.get(parts[-1])
    lines = gzip.decompress(original)
    storage.put(key, gzip.compress(lines[: len(lines) - len(lines.splitlines()[-1]) // 2 - 1]))

    lake = Lake.of(config)
    with pytest.raises(LandingReadError) as failure:
        run_transform(spark, config)
    message = str(failure.value)
    assert extracted.run_id in message and "nothing of the run was loaded" in message, message
    tables = (
        "bronze/programmes",
        "bronze/apprenticeships",
        "bronze/projects",
        "silver/programmes",
        "silver/apprenticeships",
        "silver/projects",
        "silver/quarantine",
        "_audit/runs",
        "gold/apprenticeships",
    )
    held = row_counts(spark, lake, tables)
    assert held == dict.fromkeys(tables, 0), f"tables holding rows of a run that failed: {held}"

    storage.put(key, original)  # the operator restores the file; the run was left pending
    result = run_transform(spark, config)
    assert result.loaded_run_ids == [extracted.run_id]
    assert_lake_matches(spark, config, reference_lake(ground_truth(60, 52, 0)), extracted.run_id)
    assert read_table(spark, lake, "_audit/runs").count() == 1
    # Spark's error does not always carry the path (a malformed line inside a valid gzip): the transform
    # then re-reads the parts one by one (failure path only) and names the first that fails.
    assert key in message, f"{key} is not named in: {message}"


# ---------------------------------------------------------------- an API that answers HTML


class HtmlProxy:
    """A reverse proxy to the sample API that answers `200 text/html` instead of the first N /programmes pages."""

    PAGE = b"<!DOCTYPE html><html><head><title>Service unavailable</title></head><body>Try again later</body></html>"

    def __init__(self, upstream_port: int, html_answers: int) -> None:
        self.remaining = html_answers
        self.html_served = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/programmes") and proxy.remaining > 0:
                    proxy.remaining -= 1
                    proxy.html_served += 1
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(proxy.PAGE)))
                    self.end_headers()
                    self.wfile.write(proxy.PAGE)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_POST = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def html_in_front_of_the_api(html_answers: int, scale: int, seed: int):
    server = start_api(scale=scale, seed=seed)
    proxy = HtmlProxy(server.port, html_answers)
    try:
        yield proxy
    finally:
        proxy.stop()
        server.stop()


def test_html_answers_from_the_api_are_retried_and_the_landing_is_exact(tmp_path):
    with html_in_front_of_the_api(3, scale=40, seed=53) as proxy:
        config = extract_config(str(tmp_path / "lake"), proxy.url, api={"concurrency": 4})
        result = run_extract(config)
    assert proxy.html_served == 3
    assert result.manifest.entity("programmes").retries == 3
    assert_matches_ground_truth(storage_for(config), result.run_id, 40, 53)


def test_an_api_that_keeps_answering_html_is_reported_clearly_and_nothing_is_committed(tmp_path, monkeypatch):
    waits: list[tuple[int, float]] = []  # (attempt, the backoff slept before the next one)
    backoff = RetryPolicy.delay

    def recorded(policy, attempt, *rest):
        waits.append((attempt, backoff(policy, attempt, *rest)))
        return waits[-1][1]

    monkeypatch.setattr(RetryPolicy, "delay", recorded)
    with html_in_front_of_the_api(10_000, scale=20, seed=54) as proxy:
        config = extract_config(str(tmp_path / "lake"), proxy.url, api={"max_attempts": 4, "concurrency": 2})
        with pytest.raises(RetryBudgetExhausted) as failure:
            run_extract(config)
    message = str(failure.value)
    # Bounded: max_attempts answers, and between them the short exponential backoff (0.2 s doubling, full jitter).
    assert proxy.html_served == 4
    assert [attempt for attempt, _ in waits] == [1, 2, 3]
    assert all(0 <= wait <= config.api.backoff_base_s * 2 ** (attempt - 1) for attempt, wait in waits), waits
    assert "GET /programmes" in message and "after 4 attempts" in message and "unreadable page body" in message, message
    assert isinstance(failure.value, EtlError)  # the job prints it as one line, no traceback
    assert list(committed_runs(storage_for(config))) == []


def test_an_html_answer_is_reported_with_what_was_received(tmp_path):
    """The failure says what came back (the content type and the start of the body), not only 'unreadable':
    an operator can tell a proxy's HTML error page from a truncated JSON body."""
    with html_in_front_of_the_api(10_000, scale=20, seed=54) as proxy:
        config = extract_config(str(tmp_path / "lake"), proxy.url, api={"max_attempts": 2, "concurrency": 2})
        with pytest.raises(RetryBudgetExhausted) as failure:
            run_extract(config)
    message = str(failure.value)
    assert "text/html" in message and "Service unavailable" in message, message


# ---------------------------------------------------------------- bad config values


@pytest.mark.parametrize(
    "flag, env, named",
    [
        (["--set", "api.concurrency=lots"], {}, "'api.concurrency' must be an integer"),
        (["--set", "api.pagesize=50"], {}, "unknown key 'api.pagesize'"),
        ([], {"MV__EXTRACT__PART_MAX_BYTES": "10"}, "'extract.part_max_bytes' must be at least 1024"),
        (["--set", "api.verify_tls=maybe"], {}, "'api.verify_tls' must be true or false"),
    ],
)
def test_a_bad_config_value_stops_the_job_at_once_naming_the_key(tmp_path, flag, env, named):
    done = subprocess.run(
        job_command("extract", str(tmp_path / "lake"), *flag),
        capture_output=True,
        text=True,
        timeout=60,
        env=job_env(**env),
    )
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and named in errors[0] and "bad configuration" in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not (tmp_path / "lake").exists()
