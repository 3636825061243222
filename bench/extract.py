"""Benchmark of the extractor against the sample API, with its baselines measured in the same run.

Not a test: it prints a table and asserts nothing. Usage::

    .venv/bin/python bench/extract.py                          # scales 1000 10000 100000
    .venv/bin/python bench/extract.py --scales 1000 10000 --naive-seconds 10 --wrk-seconds 5

For each scale it starts the sample API twice as a subprocess (``python -m sample_api serve
--port 0``), once with ``--latency-ms 20`` (latency-bound) and once without (CPU-bound), and
measures, each client in its own process (so CPU time and peak RSS are its own):

* latency-bound: the extractor (``run_extract``, the local config: concurrency 64, page
  size 1000) against a naive sequential client (plain ``requests.get`` calls, default page
  size), which is stopped after ``--naive-seconds`` (its rate does not depend on the scale);
* CPU-bound: the extractor against ``wrk -t1 -c64`` on the projects endpoint of the same
  server (real ids, rotated), the ceiling of what one server process answers.

Targets (issue 4): ≥ 10x the naive requests/s with latency; ≥ 50% of wrk's requests/s without;
peak RSS flat in the dataset size (< 300 MB at 100,000).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USERNAME, PASSWORD = "multiverse", "mult1v3r53"  # the sample API's public demo login
LATENCY_MS = 20


# ---------------------------------------------------------------- workers (run in their own process)


def _usage() -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def worker_extractor(url: str, lake: str, overrides: str = "{}", truth: str = "") -> dict[str, Any]:
    from multiverse_etl.config import load_config
    from multiverse_etl.extract import run_extract
    from multiverse_etl.logs import setup_logging

    setup_logging("WARNING")
    config = load_config(
        "local", {"lake.root": lake, "api.url": url, "extract.progress_interval_s": 3600, **json.loads(overrides)}
    )
    cpu0, _ = _usage()
    started = time.perf_counter()
    try:
        result = run_extract(config, mode="full")
    except Exception as exc:  # noqa: BLE001 - a failed run is a result of the benchmark
        return {
            "wall_s": time.perf_counter() - started,
            "requests": 0,
            "records": 0,
            "cpu_s": None,
            "peak_rss_mib": None,
            "retries": 0,
            "failed": f"{type(exc).__name__}: {exc}"[:160],
        }
    wall = time.perf_counter() - started
    cpu1, peak = _usage()
    manifest = result.manifest.to_json()  # the report's numbers, as the manifest wrote them
    records = sum(e["records"] for e in manifest["entities"].values())
    out = {
        "wall_s": wall,
        "requests": manifest["requests"],
        "records": records,
        "cpu_s": cpu1 - cpu0,
        "peak_rss_mib": peak,
        "retries": manifest["retries"],
        "logins": manifest["logins"],
        "pages": sum(e["pages"] for e in manifest["entities"].values()),
        "client": manifest.get("client"),
    }
    if truth:  # "scale,seed": compare the landing with the ground truth
        from multiverse_etl.storage import open_storage
        from support.extract import assert_matches_ground_truth

        scale, seed = map(int, truth.split(","))
        try:
            assert_matches_ground_truth(open_storage(config.lake.root, config.s3), result.run_id, scale, seed)
            out["exact"] = True
        except AssertionError as exc:
            out["exact"] = False
            out["failed"] = str(exc)[:160]
    return out


def worker_naive(url: str, seconds: float) -> dict[str, Any]:
    """Sequential `requests.get` calls, default page size, stopped after `seconds`."""
    import requests

    cpu0, _ = _usage()
    started = time.perf_counter()
    deadline = started + seconds
    token = requests.post(f"{url}/login", data={"username": USERNAME, "password": PASSWORD}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    requests_made, records = 1, 0
    ids: list[int] = []
    params: dict[str, Any] = {}
    while time.perf_counter() < deadline:
        page = requests.get(f"{url}/apprenticeships", params=params, headers=headers).json()
        requests_made += 1
        records += len(page["data"])
        ids.extend(row["id"] for row in page["data"])
        if not page["pagination"]["next_token"]:
            break
        params = {"pagination_token": page["pagination"]["next_token"]}
    for apprenticeship_id in ids:
        if time.perf_counter() >= deadline:
            break
        params = {}
        while True:
            page = requests.get(
                f"{url}/apprenticeships/{apprenticeship_id}/projects", params=params, headers=headers
            ).json()
            requests_made += 1
            records += len(page["data"])
            if not page["pagination"]["next_token"]:
                break
            params = {"pagination_token": page["pagination"]["next_token"]}
    wall = time.perf_counter() - started
    cpu1, peak = _usage()
    return {
        "wall_s": wall,
        "requests": requests_made,
        "records": records,
        "cpu_s": cpu1 - cpu0,
        "peak_rss_mib": peak,
        "retries": 0,
        "sampled": True,
    }


# ---------------------------------------------------------------- orchestration


def start_server(scale: int, latency_ms: float, *flags: str) -> tuple[subprocess.Popen, str]:
    command = [
        sys.executable,
        "-m",
        "sample_api",
        "serve",
        "--log-level",
        "warning",
        "--port",
        "0",
        "--scale",
        str(scale),
        "--seed",
        "42",
        *flags,
    ]
    if latency_ms:
        command += ["--latency-ms", str(latency_ms)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"sample API did not start: {line!r}")
    return proc, match.group(1)


def run_worker(*args: str, lib: Optional[str] = None) -> dict[str, Any]:
    """`lib`: another checkout's lib/ (e.g. the code before a change), imported first by the worker (PYTHONPATH)."""
    env = (
        {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (lib, os.environ.get("PYTHONPATH"))))}
        if lib
        else None
    )
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_wrk(url: str, scale: int, seconds: int, connections: int = 64) -> dict[str, Any]:
    """wrk on /apprenticeships/{id}/projects over real ids (rotated, shuffled) of the same server."""
    import requests

    token = requests.post(f"{url}/login", data={"username": USERNAME, "password": PASSWORD}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    page = requests.get(f"{url}/apprenticeships", params={"page_size": min(scale, 10_000)}, headers=headers).json()
    ids = [row["id"] for row in page["data"]]
    random.Random(1).shuffle(ids)
    script = (
        "local ids = {" + ",".join(map(str, ids)) + "}\nlocal i = 0\n"
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        "request = function()\n  i = i + 1\n"
        '  return wrk.format("GET", "/apprenticeships/" .. ids[(i % #ids) + 1] .. "/projects")\nend\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", handle.name, url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(handle.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "wall_s": float(seconds),
        "requests": total,
        "records": None,
        "cpu_s": None,
        "peak_rss_mib": None,
        "retries": 0,
        "rate": rate,
    }


def rate(result: dict[str, Any]) -> float:
    return result.get("rate") or result["requests"] / result["wall_s"]


def bench_scale(scale: int, naive_seconds: float, wrk_seconds: int, lake_dir: str) -> list[dict[str, Any]]:
    rows = []
    proc, url = start_server(scale, LATENCY_MS)
    try:
        naive = run_worker("naive", url, str(naive_seconds))
        ours = run_worker("extractor", url, os.path.join(lake_dir, f"lat-{scale}"))
    finally:
        proc.kill()
        proc.wait()
    rows.append(row(scale, f"latency {LATENCY_MS} ms", "naive requests (sampled)", naive, None))
    rows.append(row(scale, f"latency {LATENCY_MS} ms", "extractor", ours, rate(ours) / rate(naive)))
    proc, url = start_server(scale, 0)
    try:
        ours = run_worker("extractor", url, os.path.join(lake_dir, f"cpu-{scale}"))
        wrk = run_wrk(url, scale, wrk_seconds)
    finally:
        proc.kill()
        proc.wait()
    rows.append(row(scale, "no latency", "wrk -c64 projects", wrk, None))
    rows.append(row(scale, "no latency", "extractor", ours, rate(ours) / rate(wrk)))
    shutil.rmtree(lake_dir, ignore_errors=True)
    os.makedirs(lake_dir, exist_ok=True)
    return rows


def row(scale: int, scenario: str, client: str, result: dict[str, Any], vs_baseline: Optional[float]) -> dict[str, Any]:
    # the result's own "client" (the extractor's limiter statistics) must not replace the row's label
    return {
        **result,
        "scale": scale,
        "scenario": scenario,
        "client": client,
        "client_stats": result.get("client"),
        "rps": rate(result),
        "vs": vs_baseline,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'apprenticeships':>15}  {'scenario':<14}{'client':<26}{'wall s':>8}{'requests':>10}{'req/s':>9}"
        f"{'records/s':>11}{'CPU ms/req':>11}{'peak RSS MiB':>13}{'vs baseline':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        records = f"{r['records'] / r['wall_s']:.0f}" if r["records"] is not None else "-"
        cpu = f"{1000 * r['cpu_s'] / r['requests']:.3f}" if r["cpu_s"] is not None else "-"
        rss = f"{r['peak_rss_mib']:.0f}" if r["peak_rss_mib"] is not None else "-"
        vs = (
            "-" if r["vs"] is None else (f"{r['vs']:.1f}x" if r["scenario"].startswith("latency") else f"{r['vs']:.0%}")
        )
        print(
            f"{r['scale']:>15,}  {r['scenario']:<14}{r['client']:<26}{r['wall_s']:>8.1f}{r['requests']:>10,}"
            f"{r['rps']:>9.0f}{records:>11}{cpu:>11}{rss:>13}{vs:>13}"
        )
    print()
    for r in rows:
        if not r["client"].startswith("extractor"):
            continue
        if r["scenario"].startswith("latency"):
            print(
                f"target latency-bound  {r['scale']:>7,}: {r['vs']:.1f}x naive (>= 10x): {'met' if r['vs'] >= 10 else 'MISSED'}"
            )
        else:
            print(
                f"target CPU-bound      {r['scale']:>7,}: {r['vs']:.0%} of wrk (>= 50%): {'met' if r['vs'] >= 0.5 else 'MISSED'}"
            )
    peak = max(r["peak_rss_mib"] for r in rows if r["client"].startswith("extractor"))
    print(f"target peak RSS: max {peak:.0f} MiB over all extractor runs (< 300 MiB, flat in the scale)")


# ---------------------------------------------------------------- issue 12: the limiter's cases

EVERY_FAULT = [
    "--fault-rate",
    "0.1",
    "--drop-rate",
    "0.02",
    "--max-page-size",
    "25",
    "--rate-limit",
    "500",
    "--token-ttl",
    "10",
    "--fault-seed",
    "5",
]


def unloaded_p50_ms(url: str, samples: int = 40) -> float:
    """Median round trip of one request at a time (the server with no queue)."""
    import requests

    token = requests.post(f"{url}/login", data={"username": USERNAME, "password": PASSWORD}).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    times = []
    for i in range(samples):
        started = time.perf_counter()
        session.get(f"{url}/apprenticeships/{i + 1}/projects")
        times.append(time.perf_counter() - started)
    return 1000 * sorted(times)[len(times) // 2]


def one_case(
    name: str,
    scale: int,
    flags: list[str],
    lake: str,
    libs: dict[str, Optional[str]],
    overrides: Optional[dict] = None,
    truth: bool = False,
    latency_ms: float = 0,
) -> list[dict[str, Any]]:
    out = []
    for label, lib in libs.items():
        proc, url = start_server(scale, latency_ms, *flags)
        try:
            extra = {"p50_unloaded_ms": unloaded_p50_ms(url)} if name.startswith("saturating") else {}
            result = run_worker(
                "extractor",
                url,
                os.path.join(lake, f"{name}-{label}".replace(" ", "_")),
                json.dumps(overrides or {}),
                f"{scale},42" if truth else "",
                lib=lib,
            )
        finally:
            proc.kill()
            proc.wait()
        out.append({"case": name, "code": label, **result, **extra})
    return out


def print_adaptive(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'case':<34}{'code':<8}{'wall s':>8}{'requests':>10}{'2xx/s':>8}{'429 %':>7}{'limit fin/min/max':>19}"
        f"{'logins':>8}{'p50 ms':>8}  result"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        client = r.get("client") or {}
        pages = r.get("pages") or 0
        useful = (pages / r["wall_s"]) if pages else 0.0
        share = (
            100 * (client["status_429"] / r["requests"])
            if client and r["requests"]
            else (100 * r["retries"] / r["requests"] if r["requests"] else 0.0)
        )
        limit = f"{client['limit_final']}/{client['limit_min']}/{client['limit_max']}" if client else "-"
        p50 = (client.get("latency") or {}).get("p50_ms") if client else None
        notes = []
        if "p50_unloaded_ms" in r:
            notes.append(f"unloaded p50 {r['p50_unloaded_ms']:.1f} ms")
        if "exact" in r:
            notes.append("exact" if r["exact"] else "NOT exact")
        if r.get("failed"):
            notes.append("FAILED " + r["failed"])
        if r.get("logins"):
            notes.append(f"requests/login {r['requests'] / r['logins']:.0f}")
        print(
            f"{r['case']:<34}{r['code']:<8}{r['wall_s']:>8.1f}{r['requests']:>10,}{useful:>8.0f}{share:>7.1f}"
            f"{limit:>19}{r.get('logins') or 0:>8}{'-' if p50 is None else f'{p50:.1f}':>8}  {'; '.join(notes)}"
        )


def bench_adaptive(
    lake: str, before: Optional[str], wrk_seconds: int, naive_seconds: float, cpu_scale: int, latency_scale: int
) -> None:
    libs: dict[str, Optional[str]] = {"after": None}
    if before:
        libs = {"before": before, "after": None}
    rows = []
    rows += one_case("rate-limited 200/s, 3,000", 3000, ["--rate-limit", "200"], lake, libs)
    rows += one_case("saturating C=8, 10 ms, 3,000", 3000, ["--max-concurrency", "8"], lake, libs, latency_ms=10)
    rows += one_case(
        "TTL 10 + every fault, 20,000", 20_000, EVERY_FAULT, lake, libs, truth=True, overrides={"api.page_size": 1000}
    )
    print_adaptive(rows)
    print("saturating replica: its throughput is C / mean latency = 8 / 10 ms = 800 requests/s")
    print()
    # no regression: latency-bound vs naive, CPU-bound vs wrk (the existing cases, per code version)
    table = []
    for label, lib in libs.items():
        proc, url = start_server(latency_scale, LATENCY_MS)
        try:
            naive = run_worker("naive", url, str(naive_seconds))
            ours = run_worker("extractor", url, os.path.join(lake, f"lat-{label}"), lib=lib)
        finally:
            proc.kill()
            proc.wait()
        table.append(row(latency_scale, f"latency {LATENCY_MS} ms", "naive requests (sampled)", naive, None))
        table.append(
            row(latency_scale, f"latency {LATENCY_MS} ms", f"extractor ({label})", ours, rate(ours) / rate(naive))
        )
        proc, url = start_server(cpu_scale, 0)
        try:
            ours = run_worker("extractor", url, os.path.join(lake, f"cpu-{label}"), lib=lib)
            wrk = run_wrk(url, cpu_scale, wrk_seconds) if shutil.which("wrk") else None
        finally:
            proc.kill()
            proc.wait()
        if wrk:
            table.append(row(cpu_scale, "no latency", "wrk -c64 projects", wrk, None))
        table.append(
            row(cpu_scale, "no latency", f"extractor ({label})", ours, rate(ours) / rate(wrk) if wrk else None)
        )
    print_table(table)


# ---------------------------------------------------------------- issue 25: one case at a time (--case NAME)

LIMIT = 200.0
LIMIT_CASES = {  # rate limit 200/s of each common shape, 3,000 apprenticeships, no api.max_requests_per_second
    "sliding-1": ["--rate-limit-shape", "sliding", "--retry-after", "1"],
    "fixed-exact": ["--rate-limit-shape", "fixed", "--retry-after", "exact"],
    "bucket-none": ["--rate-limit-shape", "bucket", "--rate-limit-burst", "50", "--retry-after", "none"],
}
CASES = [*(f"limit-{name}" for name in LIMIT_CASES), "latency", "saturating", "cpu-single", "cpu-wrk", "ttl-faults"]


def cpu_ms(result: dict[str, Any]) -> str:
    """The extractor process's CPU time per request (getrusage), the figure that load moves least."""
    return f"{1000 * result['cpu_s'] / max(result['requests'], 1):.3f} CPU ms/request" if result.get("cpu_s") else ""


def case_row(case: str, target: str, measured: str, met: bool, note: str = "") -> str:
    return f"{case:<16}{target:<34}{measured:<34}{'met' if met else 'MISSED':<8}{note}"


# The CPU-bound rows move +-10% between runs of the same code (two cores shared by client, replica and whatever
# else runs): each is measured as medians of CPU_PAIRS interleaved pairs, the order inside a pair alternating
# (ABBA...), so that drift in the machine's load falls on both sides alike.
CPU_PAIRS = 5
CPU_SINGLE_SCALE = 30_000  # a run of ~3 s on a quiet machine (at 2,000 it lasted 0.25 s: 30 ms was 10%)
WRK_SECONDS = 10


def _alternating(pairs: int, first: str, second: str) -> list[str]:
    """first, second, second, first, first, second, ...: `pairs` pairs, each side first in half of them."""
    order: list[str] = []
    for i in range(pairs):
        order += [first, second] if i % 2 == 0 else [second, first]
    return order


def cpu_single(lake: str, scale: int) -> str:
    """Adaptive vs the fixed pool against one CPU-bound worker (replica --max-concurrency 1, a fresh one per run):
    the ratio of the medians of CPU_PAIRS interleaved pairs."""
    times: dict[str, list[float]] = {"adaptive": [], "fixed": []}
    cpu: dict[str, list[float]] = {"adaptive": [], "fixed": []}
    loads = [os.getloadavg()[0]]
    for i, mode in enumerate(_alternating(CPU_PAIRS, "adaptive", "fixed")):
        r = one_case(
            f"cpu-{mode}-{i}",
            scale,
            ["--max-concurrency", "1"],
            lake,
            {"after": None},
            overrides={"api.concurrency_mode": mode},
        )[0]
        times[mode].append(r["wall_s"])
        cpu[mode].append(1000 * (r["cpu_s"] or 0) / max(r["requests"], 1))
        loads.append(os.getloadavg()[0])
    adaptive, fixed = statistics.median(times["adaptive"]), statistics.median(times["fixed"])
    spread = ", ".join(f"{a / f:.2f}" for a, f in zip(times["adaptive"], times["fixed"]))
    note = (
        f"{scale:,} apprenticeships, medians of {CPU_PAIRS} interleaved pairs (pairs: {spread}); client CPU ms a request"
        f" {statistics.median(cpu['adaptive']):.3f} / {statistics.median(cpu['fixed']):.3f}; load {min(loads):.1f}-{max(loads):.1f}"
    )
    return case_row(
        "cpu-single",
        "<= 1.05x the fixed pool",
        f"{adaptive / fixed:.2f}x ({adaptive:.2f} / {fixed:.2f} s)",
        adaptive <= 1.05 * fixed,
        note,
    )


def cpu_wrk(lake: str, scale: int) -> str:
    """The extractor against `wrk -c64` on one CPU-bound replica: CPU_PAIRS extractor runs and CPU_PAIRS wrk runs
    interleaved, so both see the same machine; the ratio of their medians (requests/s)."""
    if not shutil.which("wrk"):
        return case_row("cpu-wrk", ">= 0.7 of wrk -c64", "not run", False, "wrk is not installed")
    rates: dict[str, list[float]] = {"extractor": [], "wrk": []}
    cpu: list[float] = []
    loads = [os.getloadavg()[0]]
    proc, url = start_server(scale, 0)
    try:
        for i, client in enumerate(_alternating(CPU_PAIRS, "wrk", "extractor")):
            if client == "wrk":
                rates["wrk"].append(rate(run_wrk(url, scale, WRK_SECONDS)))
            else:
                r = run_worker("extractor", url, os.path.join(lake, f"wrk-{i}"))
                rates["extractor"].append(rate(r))
                cpu.append(1000 * (r["cpu_s"] or 0) / max(r["requests"], 1))
            loads.append(os.getloadavg()[0])
    finally:
        proc.kill()
        proc.wait()
    ours, theirs = statistics.median(rates["extractor"]), statistics.median(rates["wrk"])
    ratio = ours / theirs
    note = (
        f"medians of {CPU_PAIRS} extractor and {CPU_PAIRS} wrk runs, interleaved on one replica: {ours:.0f}/s vs"
        f" {theirs:.0f}/s (extractor {', '.join(f'{x:.0f}' for x in rates['extractor'])}; wrk"
        f" {', '.join(f'{x:.0f}' for x in rates['wrk'])}); {statistics.median(cpu):.3f} CPU ms/request;"
        f" load {min(loads):.1f}-{max(loads):.1f}"
    )
    return case_row("cpu-wrk", ">= 0.7 of wrk -c64", f"{ratio:.2f} of wrk", ratio >= 0.7, note)


def run_case(case: str, lake: str, scale: Optional[int]) -> list[str]:
    """One case of issue 25's table, as rows of text (same-run ratios only: the machine is shared)."""
    if case.startswith("limit-"):
        flags = ["--rate-limit", str(LIMIT), *LIMIT_CASES[case.removeprefix("limit-")]]
        r = one_case(case, scale or 3000, flags, lake, {"after": None}, truth=True)[0]
        client = r.get("client") or {}
        useful = (r["requests"] - client.get("status_429", 0)) / r["wall_s"]
        share = client.get("status_429", 0) / max(r["requests"], 1)
        measured = f"{useful / LIMIT:.2f} x limit, {share:.1%} 429"
        note = f"{r['requests']:,} requests in {r['wall_s']:.1f} s, learnt {client.get('learnt_requests_per_s')}/s"
        note += "" if r.get("exact") else f"; NOT exact {r.get('failed')}"
        return [case_row(case, ">= 0.9 x 200/s, <= 2% 429", measured, useful >= 0.9 * LIMIT and share <= 0.02, note)]
    if case == "latency":
        proc, url = start_server(scale or 3000, LATENCY_MS)
        try:
            naive = run_worker("naive", url, "10")
            ours = run_worker("extractor", url, os.path.join(lake, "latency"))
        finally:
            proc.kill()
            proc.wait()
        ratio = rate(ours) / rate(naive)
        trajectory = (ours.get("client") or {}).get("limit_trajectory") or []
        reached = next((t for t, limit in trajectory if limit >= 64), None)
        note = f"run_extract {ours['wall_s']:.2f} s; limit 64 after {reached} s; {cpu_ms(ours)}"
        return [case_row(case, ">= 45x naive (20 ms, no limit)", f"{ratio:.1f}x naive", ratio >= 45, note)]
    if case == "saturating":
        r = one_case("saturating", scale or 3000, ["--max-concurrency", "8"], lake, {"after": None}, latency_ms=10)[0]
        client = r.get("client") or {}
        share = (r["pages"] / r["wall_s"]) / 800
        p50 = (client.get("latency") or {}).get("p50_ms") or 0
        ratio = p50 / r["p50_unloaded_ms"]
        return [
            case_row(
                case,
                ">= 0.9 of server, p50 <= 1.5x",
                f"{share:.2f} of server, p50 {ratio:.2f}x",
                share >= 0.9 and ratio <= 1.5,
                f"C=8, 10 ms: the server does 800/s; {cpu_ms(r)}",
            )
        ]
    if case == "cpu-single":
        return [cpu_single(lake, scale or CPU_SINGLE_SCALE)]
    if case == "cpu-wrk":
        return [cpu_wrk(lake, scale or 100_000)]
    if case == "ttl-faults":
        r = one_case(
            "ttl", scale or 20_000, EVERY_FAULT, lake, {"after": None}, truth=True, overrides={"api.page_size": 1000}
        )[0]
        ok = bool(r.get("exact")) and r["logins"] <= r["requests"] / 5
        return [
            case_row(
                case,
                "exact, logins <= requests / 5",
                f"{'exact' if r.get('exact') else 'NOT exact'}, 1/{r['requests'] / max(r['logins'], 1):.0f}",
                ok,
            )
        ]
    raise SystemExit(f"unknown case {case!r}; one of {', '.join(CASES)}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--naive-seconds", type=float, default=15.0, help="how long the naive client runs")
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument(
        "--adaptive",
        action="store_true",
        help="issue 12's cases: rate-limited, saturating, TTL 10 + every fault, no-regression",
    )
    parser.add_argument("--before", help="a lib/ folder of the code before the change, run in the same table")
    parser.add_argument("--cpu-scale", type=int, default=100_000)
    parser.add_argument("--latency-scale", type=int, default=10_000)
    parser.add_argument(
        "--case",
        choices=[*CASES, "all"],
        help="issue 25: run one case of its table (all: every case) and print its row",
    )
    parser.add_argument("--scale", type=int, help="apprenticeships for --case (default: the issue's)")
    args = parser.parse_args(argv)
    if args.case and not args.worker:
        print(
            f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        for case in CASES if args.case == "all" else [args.case]:
            with tempfile.TemporaryDirectory(prefix="bench-extract-") as lake_dir:
                for line in run_case(case, lake_dir, args.scale):
                    print(line, flush=True)
        print(f"# load average after: {os.getloadavg()[0]:.1f}")
        return 0
    if args.adaptive and not args.worker:
        print(f"# {os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.1f}")
        with tempfile.TemporaryDirectory(prefix="bench-extract-") as lake_dir:
            bench_adaptive(
                lake_dir, args.before, args.wrk_seconds, args.naive_seconds, args.cpu_scale, args.latency_scale
            )
        print(f"# load average after: {os.getloadavg()[0]:.1f}")
        return 0
    if args.worker:
        kind, *rest = args.worker
        result = worker_extractor(*rest) if kind == "extractor" else worker_naive(rest[0], float(rest[1]))
        print(json.dumps(result))
        return 0
    if not shutil.which("wrk"):
        print("wrk is not installed (Debian: apt-get install -y wrk)", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as lake_dir:
        for scale in args.scales:
            print(f"# scale {scale:,} ...", file=sys.stderr, flush=True)
            rows.extend(bench_scale(scale, args.naive_seconds, args.wrk_seconds, lake_dir))
    print(f"# {os.cpu_count()} CPUs; load average before the table: {os.getloadavg()[0]:.1f}")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
