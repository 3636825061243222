"""The adaptive limiter: the class on its own, then the real client against real servers (no mocks).

Against the sample API with a rate limit and no `api.max_requests_per_second`, the run lands exactly the
ground truth and ends with a limit below its ceiling; a `Retry-After: 0` storm does not become a tight loop.
"""

from __future__ import annotations

import asyncio
import random
import time

from aiohttp import web

from multiverse_etl.extract import run_extract
from multiverse_etl.extract.http import ApiClient
from multiverse_etl.extract.http.limiter import (
    DROP,
    INITIAL_LIMIT,
    MIN_WINDOW,
    OK,
    OVERLOAD,
    SLOW_START_ROUND_S,
    ConcurrencyLimiter,
)
from multiverse_etl.extract.http.rate import RateMeter, RatePacer
from support.extract import assert_matches_ground_truth, extract_config, start_api, storage_for
from test_client import Script, api_config, creds, ok, serve


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fill(limiter: ConcurrencyLimiter, answers: int, rtt_s: float, outcome: str = OK) -> None:
    """`answers` requests, each taking every free slot first (so the limit is what holds them back)."""

    async def main():
        for _ in range(answers):
            while limiter.in_flight < limiter.current:
                await limiter.acquire()
            waiter = asyncio.ensure_future(limiter.acquire())  # one more than the limit: it waits
            await asyncio.sleep(0)
            limiter.release(outcome, rtt_s)
            await asyncio.sleep(0)
            while not waiter.done() and limiter.in_flight:  # the limit shrank: other requests answer too
                limiter.release(outcome, rtt_s)
                await asyncio.sleep(0)
            await waiter
        while limiter.in_flight:
            limiter.release(OK, rtt_s)

    asyncio.run(main())


def test_it_starts_low_and_grows_to_the_ceiling_while_latency_stays_flat():
    limiter = ConcurrencyLimiter(64, clock=Clock())
    assert limiter.current == INITIAL_LIMIT
    fill(limiter, 3000, 0.02)
    assert limiter.current == 64 and limiter.max_seen == 64 and limiter.decreases == 0


def fill_timed(limiter: ConcurrencyLimiter, answers: int, rtt_of) -> list[int]:
    """Like `fill`, each round trip `rtt_of(limit)` (the limit it was sent under); the limit after each answer."""
    seen: list[int] = []

    async def main():
        for _ in range(answers):
            while limiter.in_flight < limiter.current:
                await limiter.acquire()
            waiter = asyncio.ensure_future(limiter.acquire())
            await asyncio.sleep(0)
            limiter.release(OK, rtt_of(limiter.current))
            await asyncio.sleep(0)
            while not waiter.done() and limiter.in_flight:
                limiter.release(OK, rtt_of(limiter.current))
                await asyncio.sleep(0)
            await waiter
            seen.append(limiter.current)
        while limiter.in_flight:
            limiter.release(OK, rtt_of(limiter.current))

    asyncio.run(main())
    return seen


def test_jitter_in_the_apis_latency_does_not_end_slow_start_and_a_queue_does():
    # 20 ms x uniform(0.5, 1.5), the replica's jitter: the latency does not depend on the limit, so nothing should
    # stop slow start. With one window of 8 round trips past the tolerance ending it, 19 of these 60 runs left slow
    # start (a limit below 64 after 600 answers); with windows of 32 and a second to confirm, 4.
    held = 0
    for seed in range(60):
        rng = random.Random(seed)
        limiter = ConcurrencyLimiter(64, clock=Clock())
        limits = fill_timed(limiter, 600, lambda limit, rng=rng: rng.uniform(0.01, 0.03))
        held += limits[-1] == 64 and limiter.slow_start
    assert held >= 50, held
    # A server that serves 8 at a time: each request waits for those ahead of it. Slow start ends, and the limit
    # goes back to about the server's capacity.
    for seed in range(10):
        rng = random.Random(seed)
        limiter = ConcurrencyLimiter(64, clock=Clock())
        limits = fill_timed(limiter, 1500, lambda limit, rng=rng: 0.01 * rng.uniform(0.5, 1.5) * max(1.0, limit / 8))
        assert not limiter.slow_start and limiter.decreases >= 1
        assert sum(limits[-500:]) / 500 <= 16, limits[-500:]


def test_it_does_not_grow_when_nothing_waits_for_a_slot():
    limiter = ConcurrencyLimiter(64, clock=Clock())

    async def main():
        for _ in range(1000):
            await limiter.acquire()
            limiter.release(OK, 0.01)

    asyncio.run(main())
    assert limiter.current == INITIAL_LIMIT


def test_overload_halves_it_once_per_round_and_rising_latency_shrinks_it():
    limiter = ConcurrencyLimiter(64, clock=Clock())
    fill(limiter, 3000, 0.01)
    assert limiter.current == 64

    async def burst_of_overloads():
        for _ in range(64):
            await limiter.acquire()
        for _ in range(64):  # 64 answers of 429 from requests sent under the same limit: one decrease
            limiter.release(OVERLOAD, None)

    asyncio.run(burst_of_overloads())
    assert limiter.current == 32 and limiter.decreases == 1
    fill(limiter, 10 * MIN_WINDOW, 0.05)  # five times the baseline round trip: the API is queueing us
    assert limiter.current < 32 and limiter.min_seen < 32
    before = limiter.current
    fill(limiter, 1, 0.01, outcome=DROP)
    assert limiter.current < before


def test_a_cap_bounds_it_and_fixed_mode_never_moves():
    limiter = ConcurrencyLimiter(64, clock=Clock())
    limiter.set_cap(3)
    fill(limiter, 500, 0.01)
    assert limiter.current == 3
    fixed = ConcurrencyLimiter(16, adaptive=False, clock=Clock())
    fill(fixed, 200, 0.01, outcome=OVERLOAD)
    assert fixed.current == 16 and fixed.decreases == 0


def test_a_slot_asked_first_goes_ahead_of_every_waiter_and_the_rest_keep_their_order():
    async def main():
        limiter = ConcurrencyLimiter(1, adaptive=False, clock=Clock())
        await limiter.acquire()  # the one slot is taken: everyone below waits
        served: list[str] = []

        async def wait(name: str, first: bool = False) -> None:
            await limiter.acquire(first)
            served.append(name)

        tasks = [asyncio.ensure_future(wait(name)) for name in ("a", "b", "c")]
        await asyncio.sleep(0)
        tasks.append(asyncio.ensure_future(wait("retry", first=True)))
        await asyncio.sleep(0)
        for _ in range(4):
            limiter.release(OK, 0.01)
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return served

    assert asyncio.run(main()) == ["retry", "a", "b", "c"]


def test_the_rate_meter_and_pacer_learn_what_the_api_accepted():
    clock = Clock()
    meter = RateMeter(span_s=2.0, clock=clock)
    for _ in range(400):  # 200 a second for two seconds
        clock.now += 0.005
        meter.add()
    assert 190 <= meter.rate() <= 210
    pacer = RatePacer(hard=150.0, clock=clock)
    pacer.learn(meter.rate(), meter.count())
    assert pacer.rate == 150.0  # the hard cap stays a cap
    pacer = RatePacer(clock=clock)
    pacer.learn(meter.rate(), meter.count())
    assert 190 <= pacer.rate <= 210


def test_a_rate_limited_replica_without_max_requests_per_second_lands_exactly_and_ends_below_the_ceiling(tmp_path):
    server = start_api(scale=250, seed=61, rate_limit=50.0)
    try:
        config = extract_config(str(tmp_path / "lake"), server.url, api={"page_size": 1000, "concurrency": 64})
        assert config.api.max_requests_per_second is None and config.api.concurrency_mode == "adaptive"
        result = run_extract(config)
    finally:
        server.stop()
    assert_matches_ground_truth(storage_for(config), result.run_id, 250, 61)
    client = result.manifest.client
    assert client["status_429"] > 0, client  # the limit was really hit
    assert client["limit_final"] < 64 and client["limit_max"] <= 64, client
    assert client["learnt_requests_per_s"] is not None and client["pauses"] >= 1, client
    # the old client kept 64 in flight: ~64 answers of 429 per burst; now a handful per pause
    assert client["status_429"] <= 3 * INITIAL_LIMIT * client["pauses"], client


def test_retry_after_zero_does_not_make_a_tight_loop():
    window_s = 1.0

    async def data(script, request):
        script.first = getattr(script, "first", None) or time.monotonic()
        if time.monotonic() - script.first < window_s:
            script.throttled = getattr(script, "throttled", 0) + 1
            return web.json_response({"detail": "Too Many Requests"}, status=429, headers={"Retry-After": "0"})
        return await ok(script, request)

    async def main():
        script = Script(data)
        async with serve(script) as url, ApiClient(api_config(url, concurrency=16), creds()) as client:
            results = await asyncio.gather(
                *(client.get_page(f"/apprenticeships/{i}/projects", {}, entity="projects") for i in range(20))
            )
        assert len(results) == 20
        # 16 tasks retrying on their own after 0-50 ms made ~500 requests in that second; a shared gate with a
        # floor of 0.1-0.2 s and a shrinking limit make a few dozen at most
        assert script.throttled <= 60, script.throttled
        assert client.counts.status_429 == script.throttled and client.throttle.pauses >= 1

    asyncio.run(main())


def test_slow_start_against_an_api_answering_in_a_millisecond_counts_a_round_trip_as_ten():
    # 1 ms round trips: 8 in flight already make 8,000 requests/s. Doubling per real round trip reached 64 in
    # 56 answers, and that many in flight are what a rate limit then refuses at once (the first 429 burst).
    # Growth per answer is the shortest round trip over SLOW_START_ROUND_S: doubling per 10 ms, not per 1 ms.
    fast = ConcurrencyLimiter(64, clock=Clock())
    limits = fill_timed(fast, 100, lambda limit: 0.001)
    assert fast.slow_start and limits[-1] <= INITIAL_LIMIT + 100 * 0.001 / SLOW_START_ROUND_S + 1, limits[-1]
    assert limits[-1] > INITIAL_LIMIT  # it still grows
    # An API at least SLOW_START_ROUND_S away: one more per answer, 64 after 56 answers, as before.
    far = ConcurrencyLimiter(64, clock=Clock())
    assert fill_timed(far, 56, lambda limit: SLOW_START_ROUND_S)[-1] == 64


def test_slow_start_ends_at_no_more_than_fits_the_best_round_trip():
    # The first window is slow (the API warming up), the second the best (limit 40 at its start), then a queue
    # four times the best round trip: back to 40 would keep 30 requests queued; `began x best / median` fits.
    answers = iter(range(10_000))

    def rtt(limit: int) -> float:
        n = next(answers)
        return 0.03 if n < 32 else 0.02 if n < 64 else 0.08

    limiter = ConcurrencyLimiter(64, clock=Clock())
    limits = fill_timed(limiter, 130, rtt)
    assert not limiter.slow_start
    exit_at = next(i for i in range(1, len(limits)) if limits[i] < limits[i - 1])
    assert limits[exit_at - 1] == 64 and limits[exit_at] <= 64 * 0.02 / 0.08 + 1, limits
    # never below where it started
    slow = ConcurrencyLimiter(64, clock=Clock())
    answers = iter(range(10_000))
    fill_timed(slow, 130, lambda limit: 0.01 if next(answers) < 64 else 1.0)
    assert not slow.slow_start and slow.current == INITIAL_LIMIT


def after_a_429(rtt_s: float) -> ConcurrencyLimiter:
    """A limiter grown to 64 on round trips of `rtt_s`, then halved by a burst of 429s (slow start is over)."""
    limiter = ConcurrencyLimiter(64, clock=Clock())
    fill(limiter, 3000, rtt_s)

    async def a_429():
        for _ in range(limiter.current):
            await limiter.acquire()
        for _ in range(64):
            limiter.release(OVERLOAD, None)

    asyncio.run(a_429())
    assert limiter.current == 32 and not limiter.slow_start
    return limiter


def test_far_below_the_ceiling_with_no_queue_it_climbs_back_by_the_square_root_of_the_limit():
    # Round trips as flat as the baseline: by one per window of 2 x limit answers, 32 -> 64 took ~3,000 answers;
    # by the square root, five windows.
    limits = fill_timed(after_a_429(0.01), 700, lambda limit: 0.01)
    assert limits[-1] == 64, limits[-1]
    # Round trips near the tolerance (1.3x the baseline): one a window, as before.
    near = fill_timed(after_a_429(0.01), 700, lambda limit: 0.013)
    assert 32 < near[-1] <= 32 + 700 // 64, near[-1]
