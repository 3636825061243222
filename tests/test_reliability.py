"""The fault matrix: every fault of the sample API at once, plus a restart mid-extraction, end to end.

One pipeline run (extract, then transform on the session's SparkSession) into a lake on the local S3
endpoint, shared with tests/test_bad_input.py and tests/test_security.py (see
`support.scenarios.faulted_pipeline_run`). `make chaos` (bench/chaos.py) runs the same at 20,000+.
"""

from __future__ import annotations

import pytest

from support.scenarios import FAULT_MATRIX


@pytest.fixture(scope="module")
def run(faulted_run):
    return faulted_run


def test_every_fault_at_once_and_a_restart_end_with_silver_and_gold_equal_to_the_ground_truth(run):
    comparison = run.comparison
    assert comparison.ok, comparison.describe()
    assert (comparison.missing, comparison.duplicated, comparison.wrong) == (0, 0, 0)
    assert (
        comparison.expected
        == comparison.in_lake
        == sum(run.reference.expected_records(e) for e in comparison.by_entity)
    )
    assert run.transform.loaded_run_ids == [run.extract.run_id] and run.transform.gold_mode == "rebuilt"


def test_every_fault_really_happened_and_was_retried(run):
    faults = run.api.faults
    assert faults["500"] > 0 and faults["drop"] > 0 and faults["429"] > 0, run.api.describe_faults()
    assert faults["401"] > 0 and faults["restart"] == 1, run.api.describe_faults()
    manifest = run.extract.manifest
    assert manifest.retries >= faults["500"] + faults["drop"] and (manifest.logins or 0) > 1
    # the cap of 25 was learnt from the first page and kept: 300 apprenticeships in 12 pages, not 6 of 50
    assert manifest.entity("apprenticeships").pages == -(-run.scale // FAULT_MATRIX["max_page_size"]) == 12


def test_the_restart_killed_the_pagination_tokens_and_the_walk_started_again(run):
    restarts = [line for line in run.logs.splitlines() if "pagination token dead" in line]
    assert any("/apprenticeships:" in line for line in restarts), "\n".join(restarts) or "no list was restarted"
    # what the dead walk had landed was dropped, not kept twice: the run landed each apprenticeship once
    landed = run.extract.manifest.entity("apprenticeships")
    assert landed.records == run.scale


def test_the_run_is_audited_once_and_reconciles(run, spark):
    from multiverse_etl.lake import Lake
    from multiverse_etl.transform.tables import read_table

    audit = read_table(spark, Lake.of(run.config), "_audit/runs").collect()
    assert [(r.run_id, r.status, r.reconciled, list(r.mismatches)) for r in audit] == [
        (run.extract.run_id, "loaded", True, [])
    ]


def test_a_dead_pagination_token_is_recognised_even_when_429s_and_dropped_connections_come_between_its_500s():
    """After a restart, a tokened request answers 500 forever; rate limiting and drops interleave with those 500s.

    429s and dropped connections say nothing about the token, so they do not break the run of 500s: the token is
    declared dead (DeadPaginationToken: the list restarts) instead of the request failing after all its attempts.
    """
    from aiohttp import web

    from multiverse_etl.extract.errors import DeadPaginationToken
    from multiverse_etl.extract.http import ApiClient
    from test_client import Script, api_config, creds, run, serve

    cycle = ["500", "500", "500", "429", "500", "500", "500", "drop"]

    async def data(script, request):
        step = cycle[(script.requests - 1) % len(cycle)]
        if step == "429":
            return web.json_response({"detail": "Too Many Requests"}, status=429, headers={"Retry-After": "0"})
        if step == "drop":
            request.transport.close()
            return web.Response(status=200)
        return web.Response(status=500, text="Internal Server Error")

    async def main():
        script = Script(data)
        async with serve(script) as url, ApiClient(api_config(url, max_attempts=12), creds()) as client:
            with pytest.raises(DeadPaginationToken):
                await client.get_page("/apprenticeships", {"page_size": 5, "pagination_token": "dead"}, entity="a")

    run(main())
