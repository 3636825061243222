"""Where a run against a CPU-bound single-worker replica spends its time: adaptive vs the fixed pool.

Not a test. Starts the replica (``--max-concurrency 1``, no latency) and runs ``run_extract`` in this process,
once per mode per round (interleaved), and prints per run: wall time, the server's time on a CPU, waiting for one
(run queue) and asleep (``/proc/PID/task/*/schedstat``: asleep = idle, no request to serve), the client's CPU per
request, and with ``--trace`` the requests in flight over time (sampled at each acquire/release) and the limit::

    PYTHONPATH=lib .venv/bin/python bench/trace_cpu_single.py --scale 20000 --rounds 3 [--trace]
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from extract import start_server  # noqa: E402  (bench/extract.py)


def schedstat(pid: int | str) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of every thread of `pid`."""
    on = wait = 0.0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as handle:
                fields = handle.read().split()
        except OSError:
            continue
        on += int(fields[0]) / 1e9
        wait += int(fields[1]) / 1e9
    return on, wait


def switches(pid: int | str) -> int:
    """Voluntary context switches of every thread of `pid` (each one a sleep: an empty queue, a wake-up later)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(path) as handle:
                for line in handle:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def run_once(url: str, server_pid: int, mode: str, lake: str, trace: bool) -> dict[str, Any]:
    from multiverse_etl.config import load_config
    from multiverse_etl.extract import run_extract
    from multiverse_etl.extract.http import throttle as throttle_mod

    samples: list[tuple[float, int, int]] = []
    original_acquire, original_release = throttle_mod.Throttle.acquire, throttle_mod.Throttle.release
    if trace:

        async def acquire(self: Any, first: bool = False) -> Any:
            ticket = await original_acquire(self, first)
            samples.append((time.monotonic(), self.limiter.in_flight, self.limiter.current))
            return ticket

        def release(self: Any, ticket: Any, signal: str, accepted: bool) -> None:
            original_release(self, ticket, signal, accepted)
            samples.append((time.monotonic(), self.limiter.in_flight, self.limiter.current))

        throttle_mod.Throttle.acquire, throttle_mod.Throttle.release = acquire, release  # type: ignore[method-assign]
    config = load_config(
        "local",
        {"lake.root": lake, "api.url": url, "extract.progress_interval_s": 3600, "api.concurrency_mode": mode},
    )
    s_on0, s_wait0 = schedstat(server_pid)
    c_on0, c_wait0 = schedstat("self")
    s_sw0, c_sw0 = switches(server_pid), switches("self")
    started = time.monotonic()
    try:
        result = run_extract(config, mode="full")
    finally:
        throttle_mod.Throttle.acquire, throttle_mod.Throttle.release = original_acquire, original_release  # type: ignore[method-assign]
    wall = time.monotonic() - started
    s_on1, s_wait1 = schedstat(server_pid)
    c_on1, c_wait1 = schedstat("self")
    s_sw1, c_sw1 = switches(server_pid), switches("self")
    manifest = result.manifest.to_json()
    client = manifest.get("client") or {}
    out = {
        "mode": mode,
        "wall": wall,
        "requests": manifest["requests"],
        "server_on": s_on1 - s_on0,
        "server_wait": s_wait1 - s_wait0,
        "client_on": c_on1 - c_on0,
        "client_wait": c_wait1 - c_wait0,
        "server_sleeps": s_sw1 - s_sw0,
        "client_sleeps": c_sw1 - c_sw0,
        "limit": f"{client.get('limit_final')}/{client.get('limit_min')}/{client.get('limit_max')}",
        "p50": (client.get("latency") or {}).get("p50_ms"),
        "load": os.getloadavg()[0],
    }
    if samples:
        # time-weighted share of the run at each number in flight (from the first to the last sample)
        weights: dict[int, float] = {}
        for (t0, n, _), (t1, _, _) in zip(samples, samples[1:]):
            weights[n] = weights.get(n, 0.0) + (t1 - t0)
        span = samples[-1][0] - samples[0][0]
        out["in_flight"] = {n: round(w / span, 3) for n, w in sorted(weights.items()) if w / span >= 0.005}
        out["mean_in_flight"] = sum(n * w for n, w in weights.items()) / span
        out["limit_mean"] = sum(lim for _, _, lim in samples) / len(samples)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--modes", nargs="+", default=["adaptive", "fixed"])
    args = parser.parse_args()
    from multiverse_etl.logs import setup_logging

    setup_logging("WARNING")
    proc, url = start_server(args.scale, 0, "--max-concurrency", "1")
    try:
        with tempfile.TemporaryDirectory(prefix="trace-cpu-") as lake:
            for i in range(args.rounds):
                for mode in args.modes:
                    r = run_once(url, proc.pid, mode, os.path.join(lake, f"{mode}-{i}"), args.trace)
                    idle = r["wall"] - r["server_on"] - r["server_wait"]
                    line = (
                        f"{mode:<9} wall {r['wall']:6.2f} s  server on-CPU {r['server_on']:5.2f} runq {r['server_wait']:5.2f}"
                        f" asleep {idle:5.2f} ({idle / r['wall']:.0%})  client on-CPU {r['client_on']:5.2f} runq "
                        f"{r['client_wait']:5.2f} = {1000 * r['client_on'] / r['requests']:.3f} ms/req,"
                        f" server {1000 * r['server_on'] / r['requests']:.3f} ms/req; sleeps/100 req server"
                        f" {100 * r['server_sleeps'] / r['requests']:.1f} client {100 * r['client_sleeps'] / r['requests']:.1f};"
                        f" limit {r['limit']} p50 {r['p50']}"
                        f" load {r['load']:.1f}"
                    )
                    if "in_flight" in r:
                        line += f"\n          in flight mean {r['mean_in_flight']:.1f}, limit mean {r['limit_mean']:.1f}: {r['in_flight']}"
                    print(line, flush=True)
    finally:
        proc.kill()
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
