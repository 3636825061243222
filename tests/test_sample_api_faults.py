"""Fault flags of the replica: each one alone, then all at once.

The key property: a fault replaces an answer, it never alters one, so a client that
retries faulted requests lands exactly the ground truth (corruption included).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
import requests

from sample_api import faults
from sample_api.corrupt import KINDS, corruption_of
from sample_api.data import build_dataset
from sample_api.dump import ground_truth_of
from sample_api.faults import RateLimiter
from sample_api.server import run_in_thread, serve_in_background
from sample_api.settings import ServerSettings
from sample_api.testing import login, walk
from sample_api.tokens import FIXED_ACCESS_TOKEN

SCALE, SEED = 120, 3


@pytest.fixture(scope="module")
def truth() -> dict[str, list[dict[str, Any]]]:
    return ground_truth_of(build_dataset(SCALE, SEED, 0))


def statuses(url: str, path: str, n: int, session: requests.Session) -> Counter[Any]:
    seen: Counter[Any] = Counter()
    for _ in range(n):
        try:
            seen[session.get(f"{url}{path}").status_code] += 1
        except requests.ConnectionError:
            seen["dropped"] += 1
    return seen


def test_fault_rate_answers_500_and_spares_login(truth: dict[str, Any]) -> None:
    with (
        serve_in_background(scale=SCALE, seed=SEED, fault_rate=0.3, fault_seed=1) as srv,
        requests.Session() as session,
    ):
        for _ in range(5):
            login(session, srv.url)  # /login is never faulted
        seen = statuses(srv.url, "/programmes", 200, session)
        assert set(seen) == {200, 500}
        assert 30 <= seen[500] <= 90
        rows = walk(session, srv.url, "/apprenticeships", 7, retries=30)
        assert rows == truth["apprenticeships"]


def test_fault_500_looks_like_the_originals(truth: dict[str, Any]) -> None:
    with serve_in_background(scale=SCALE, seed=SEED, fault_rate=1.0) as srv, requests.Session() as session:
        login(session, srv.url)
        answer = session.get(f"{srv.url}/programmes")
        assert answer.status_code == 500 and answer.text == "Internal Server Error"
        assert requests.get(f"{srv.url}/openapi.json").status_code == 200


def test_drop_rate_closes_connections_without_answer(truth: dict[str, Any]) -> None:
    with serve_in_background(scale=SCALE, seed=SEED, drop_rate=0.3, fault_seed=2) as srv, requests.Session() as session:
        login(session, srv.url)
        seen = statuses(srv.url, "/programmes", 150, session)
        assert set(seen) == {200, "dropped"}
        assert 20 <= seen["dropped"] <= 75
        rows = walk(session, srv.url, "/programmes", 5, retries=30)
        assert rows == truth["programmes"]


class _RecordedSleeps:
    """sample_api.faults' `asyncio`, whose sleep records its delay and yields at once (a fake clock for latency)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def test_latency_with_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps = _RecordedSleeps()
    monkeypatch.setattr(faults, "asyncio", sleeps)
    with serve_in_background(scale=SCALE, seed=SEED, latency_ms=200) as srv, requests.Session() as session:
        login(session, srv.url)
        login(session, srv.url)
        assert sleeps.delays == []  # /login is never delayed
        for _ in range(4):
            assert session.get(f"{srv.url}/programmes").status_code == 200
        assert len(sleeps.delays) == 4  # one delay per data request
        assert all(0.1 <= delay <= 0.3 for delay in sleeps.delays), sleeps.delays  # 200 ms x uniform(0.5, 1.5)
        assert len(set(sleeps.delays)) == 4  # jitter


def test_rate_limit_429_with_retry_after() -> None:
    with serve_in_background(scale=SCALE, seed=SEED, rate_limit=5) as srv, requests.Session() as session:
        login(session, srv.url)
        seen = []
        for _ in range(60):
            answer = session.get(f"{srv.url}/programmes")
            seen.append(answer.status_code)
            if answer.status_code == 429:
                assert answer.json() == {"detail": "Too Many Requests"}
                assert int(answer.headers["Retry-After"]) >= 1
        assert seen.count(429) >= 20 and seen.count(200) >= 5
        time.sleep(0.25)
        assert session.get(f"{srv.url}/programmes").status_code == 200


def test_rate_limiter_refills_at_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(10, clock=lambda: now[0])
    assert [limiter.acquire() for _ in range(10)] == [None] * 10
    assert limiter.acquire() == 1
    now[0] += 0.1
    assert limiter.acquire() is None
    assert limiter.acquire() == 1


def test_token_ttl_expires_tokens_and_login_refreshes(truth: dict[str, Any]) -> None:
    with serve_in_background(scale=SCALE, seed=SEED, token_ttl=3) as srv, requests.Session() as session:
        first = login(session, srv.url)
        assert first != FIXED_ACCESS_TOKEN
        for _ in range(3):
            assert session.get(f"{srv.url}/programmes").status_code == 200
        dead = session.get(f"{srv.url}/programmes")
        assert dead.status_code == 401 and dead.json() == {"detail": "Invalid token"}
        second = login(session, srv.url)
        assert second != first
        assert session.get(f"{srv.url}/programmes").status_code == 200
        fixed = requests.get(f"{srv.url}/programmes", headers={"Authorization": f"Bearer {FIXED_ACCESS_TOKEN}"})
        assert fixed.status_code == 401
        # a client that logs in again on 401 keeps its place in the list
        assert walk(session, srv.url, "/apprenticeships", 10, retries=3) == truth["apprenticeships"]


def test_max_page_size_caps_pages(truth: dict[str, Any]) -> None:
    with serve_in_background(scale=SCALE, seed=SEED, max_page_size=7) as srv, requests.Session() as session:
        login(session, srv.url)
        page = session.get(f"{srv.url}/apprenticeships", params={"page_size": 100}).json()
        assert len(page["data"]) == 7 and page["pagination"]["page_size"] == 7
        assert walk(session, srv.url, "/apprenticeships", 100) == truth["apprenticeships"]
        assert walk(session, srv.url, "/programmes", 3) == truth["programmes"]


def test_corrupt_rate_serves_exactly_the_ground_truth_corruption() -> None:
    rate = 0.3
    ds = build_dataset(SCALE, SEED, 1, corrupt_rate=rate)
    bad_truth = ground_truth_of(ds)
    clean = ground_truth_of(build_dataset(SCALE, SEED, 1))
    settings = ServerSettings(scale=SCALE, seed=SEED, generation=1, corrupt_rate=rate)
    with run_in_thread(settings, dataset=ds) as srv, requests.Session() as session:
        login(session, srv.url)
        assert walk(session, srv.url, "/apprenticeships", 50) == bad_truth["apprenticeships"]
        assert walk(session, srv.url, "/programmes", 50) == bad_truth["programmes"]
        served = []
        for aid in ds.ids:
            for p in walk(session, srv.url, f"/apprenticeships/{aid}/projects", 50):
                served.append({**p, "apprenticeship_id": aid})
        assert served == bad_truth["projects"]
    for entity, key in (("apprenticeship", "apprenticeships"), ("project", "projects"), ("programme", "programmes")):
        kinds = Counter()
        for good, bad in zip(clean[key], bad_truth[key]):
            kind = corruption_of(entity, good["id"], SEED, rate)
            assert (kind is None) == (good == bad)
            kinds[kind] += 1
            if kind is not None:  # nothing marks a bad record: only contract keys
                assert set(bad) <= set(good)
        if entity != "programme":  # 43 programmes: too few to see every kind
            assert set(kinds) - {None} == set(KINDS[entity])
        assert 0.15 < sum(v for k, v in kinds.items() if k) / len(clean[key]) < 0.45


def test_corrupted_records_break_the_contract() -> None:
    truth = ground_truth_of(build_dataset(400, SEED, 0, corrupt_rate=0.5))
    apps = truth["apprenticeships"]
    fields = {"id", "name", "programme_id", "modified_date", "first_name", "last_name", "email_address"}
    assert any(set(r) != fields for r in apps)
    assert any(r.get("id", 0) is None for r in apps)
    assert any(isinstance(r.get("id"), str) or isinstance(r.get("programme_id"), str) for r in apps)
    assert any(isinstance(r.get("modified_date"), str) and not r["modified_date"][:2] == "20" for r in apps)
    assert any(p.get("status") not in (None, "pending", "submitted", "graded") for p in truth["projects"])


def test_all_faults_at_once_never_alter_a_successful_answer() -> None:
    rate = 0.1
    ds = build_dataset(SCALE, SEED, 2, corrupt_rate=rate)
    truth = ground_truth_of(ds)
    settings = ServerSettings(
        scale=SCALE,
        seed=SEED,
        generation=2,
        corrupt_rate=rate,
        fault_rate=0.15,
        drop_rate=0.1,
        latency_ms=2,
        token_ttl=25,
        rate_limit=400,
        max_page_size=9,
        fault_seed=5,
    )
    with run_in_thread(settings, dataset=ds) as srv, requests.Session() as session:
        login(session, srv.url)
        assert walk(session, srv.url, "/apprenticeships", 9, retries=40) == truth["apprenticeships"]
        assert walk(session, srv.url, "/programmes", 9, retries=40) == truth["programmes"]
        aid = Counter(p["apprenticeship_id"] for p in truth["projects"]).most_common(1)[0][0]
        expected = [
            {k: v for k, v in p.items() if k != "apprenticeship_id"}
            for p in truth["projects"]
            if p["apprenticeship_id"] == aid
        ]
        assert walk(session, srv.url, f"/apprenticeships/{aid}/projects", 9, retries=40) == expected
