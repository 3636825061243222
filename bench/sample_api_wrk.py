"""Benchmark of the replica: wrk on the projects endpoint, startup time and RSS.

Not a test (it takes minutes and needs Debian's ``wrk``). Usage::

    .venv/bin/python bench/sample_api_wrk.py                      # scales 1000 and 1000000
    .venv/bin/python bench/sample_api_wrk.py --scales 1000 --duration 5

For each scale it starts ``python -m sample_api serve --port 0`` (one uvicorn worker),
times the start until ``listening on``, runs ``wrk -t1 -c64`` against
``/apprenticeships/{id}/projects`` rotating over real apprenticeship ids (10,000 of
them, shuffled, so no page is served twice in a row), and reads the server's RSS from
/proc. Prints a table; exits 1 if a projects run is under ``--min-rps``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from typing import Any, Optional

from sample_api.data import build_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LUA = """
local ids = {%(ids)s}
local i = 0
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function()
  i = i + 1
  return wrk.format("GET", "/apprenticeships/" .. ids[(i %% #ids) + 1] .. "/projects")
end
"""


def start_server(scale: int, seed: int) -> tuple[subprocess.Popen[str], str, float]:
    """Start the CLI server; (process, url, seconds until it listened)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
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
            str(seed),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, match.group(1), time.perf_counter() - started


def login(url: str) -> str:
    body = urllib.parse.urlencode({"username": "multiverse", "password": "mult1v3r53"}).encode()
    with urllib.request.urlopen(urllib.request.Request(url + "/login", data=body)) as answer:
        return json.load(answer)["access_token"]


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of ``pid`` in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line.split(":")[0]] = int(line.split()[1]) / 1024
    return values["VmRSS"], values["VmHWM"]


def run_wrk(url: str, script: str, duration: int, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": p50.group(1) if p50 else "?",
        "p99": p99.group(1) if p99 else "?",
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "none",
    }


def bench_scale(scale: int, seed: int, duration: int, connections: int) -> dict[str, Any]:
    ds = build_dataset(scale, seed, 0)
    rng = random.Random(seed)
    ids = rng.sample(list(ds.ids), min(10_000, len(ds)))
    projects_per_request = sum(ds.project_range(i)[1] for i in ids) / len(ids)
    del ds
    proc, url, startup = start_server(scale, seed)
    try:
        token = login(url)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
            lua.write(LUA % {"ids": ",".join(map(str, ids)), "token": token})
        run_wrk(url, lua.name, 2, connections)  # warm-up
        result = run_wrk(url, lua.name, duration, connections)
        rss, peak = rss_mib(proc.pid)
        os.unlink(lua.name)
    finally:
        proc.terminate()
        proc.wait(10)
    return {
        "scale": scale,
        "startup_s": startup,
        "rss_mib": rss,
        "peak_rss_mib": peak,
        "avg_projects": projects_per_request,
        **result,
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1000, 1_000_000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--min-rps", type=float, default=2000.0)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    rows = [bench_scale(s, args.seed, args.duration, args.connections) for s in args.scales]
    header = (
        f"{'scale':>9} {'start s':>8} {'RSS MiB':>8} {'peak MiB':>9} {'req/s':>8} "
        f"{'p50':>8} {'p99':>8} {'non-2xx':>8} {'proj/req':>8}"
    )
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s, GET /apprenticeships/{{id}}/projects")
    print(header)
    for r in rows:
        print(
            f"{r['scale']:>9} {r['startup_s']:>8.2f} {r['rss_mib']:>8.0f} "
            f"{r['peak_rss_mib']:>9.0f} {r['rps']:>8.0f} {r['p50']:>8} {r['p99']:>8} "
            f"{r['non2xx']:>8} {r['avg_projects']:>8.2f}"
        )
        if r["socket_errors"] != "none":
            print(f"          socket errors: {r['socket_errors']}")
    return 0 if all(r["rps"] >= args.min_rps for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
