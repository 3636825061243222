"""The replica's data: determinism, realism, generation deltas, dump, CLI, cost per page."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from typing import Any, Optional

import orjson
import pytest
import requests
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from sample_api.data import build_dataset
from sample_api.dump import FILES, ground_truth, write_dump
from sample_api.service import Service
from sample_api.testing import login
from sample_api.tokens import TokenCodec, TokenError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def read_dump(directory: str) -> dict[str, bytes]:
    out = {}
    for name in FILES:
        with open(os.path.join(directory, f"{name}.json"), "rb") as f:
            out[name] = f.read()
    return out


# ---------------------------------------------------------------- determinism and dump


def test_same_arguments_give_byte_identical_dumps(tmp_path: Any) -> None:
    write_dump(str(tmp_path / "a"), 300, 11, 2, corrupt_rate=0.05)
    write_dump(str(tmp_path / "b"), 300, 11, 2, corrupt_rate=0.05)
    write_dump(str(tmp_path / "c"), 300, 12, 2, corrupt_rate=0.05)
    a, b, c = (read_dump(str(tmp_path / d)) for d in "abc")
    assert a == b
    assert a["apprenticeships"] != c["apprenticeships"]
    parsed = {name: json.loads(raw) for name, raw in a.items()}
    assert parsed == ground_truth(300, 11, 2, corrupt_rate=0.05)


def test_dump_cli_writes_the_same_files(tmp_path: Any) -> None:
    out = tmp_path / "cli"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sample_api",
            "dump",
            "--log-level",
            "warning",
            "--out",
            str(out),
            "--scale",
            "60",
            "--seed",
            "5",
            "--generation",
            "1",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    write_dump(str(tmp_path / "lib"), 60, 5, 1)
    assert read_dump(str(out)) == read_dump(str(tmp_path / "lib"))
    projects = json.loads(read_dump(str(out))["projects"])
    assert all(list(p)[-1] == "apprenticeship_id" for p in projects)


# ---------------------------------------------------------------- realism


@pytest.fixture(scope="module")
def big() -> dict[str, list[dict[str, Any]]]:
    return ground_truth(2000, 21, 0)


def test_generation_zero_shape(big: dict[str, list[dict[str, Any]]]) -> None:
    apps, projects, programmes = big["apprenticeships"], big["projects"], big["programmes"]
    assert len(apps) == 2000
    ids = [a["id"] for a in apps]
    assert ids == sorted(set(ids)) and ids[-1] > len(ids)  # ascending, with gaps
    assert 35 <= len(programmes) <= 45 and len(programmes) % 20 != 0
    per_app = Counter(p["apprenticeship_id"] for p in projects)
    counts = [per_app.get(i, 0) for i in ids]
    assert 0.07 < counts.count(0) / len(counts) < 0.13
    assert sum(1 <= c <= 6 for c in counts) / len(counts) > 0.85
    assert 1 <= sum(c > 40 for c in counts) <= 20
    assert all(DATE.fullmatch(a["modified_date"]) for a in apps)
    assert min(a["modified_date"] for a in apps) >= "2023-01-01"
    assert max(a["modified_date"] for a in apps) < "2025-01-01"
    assert all(isinstance(p["duration"], int) for p in programmes)
    project_ids = [p["id"] for p in projects]
    assert len(set(project_ids)) == len(project_ids)


def test_values_are_realistic_and_uncleaned(big: dict[str, list[dict[str, Any]]]) -> None:
    apps = big["apprenticeships"]
    names = " ".join(a["first_name"] + " " + a["last_name"] for a in apps)
    for char in "éłøß'-":
        assert char in names, char
    assert re.search(r"[\u4e00-\u9fff\u3040-\u30ff]", names)
    assert (
        sum(a["first_name"] != a["first_name"].strip() or a["last_name"] != a["last_name"].strip() for a in apps) > 10
    )
    emails = [a["email_address"] for a in apps]
    assert sum(e != e.lower() for e in emails) > 100
    assert any(e != e.strip() for e in emails)
    descriptions = [p["description"] for p in big["projects"]]
    for token in (",", '"', "\n", "🎉"):
        assert any(token in d for d in descriptions), token
    programme_ids = {p["id"] for p in big["programmes"]}
    assert 1 <= sum(a["programme_id"] not in programme_ids for a in apps) < 40
    people = Counter(
        (a["first_name"].strip().lower(), a["last_name"].strip().lower(), a["email_address"].strip().lower())
        for a in apps
    )
    assert any(n > 1 for n in people.values())  # the same person under two ids


# ---------------------------------------------------------------- generations


def _by_id(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {r["id"]: r for r in rows}


def test_generation_step_deltas() -> None:
    before, after = ground_truth(2000, 8, 2), ground_truth(2000, 8, 3)
    old, new = _by_id(before["apprenticeships"]), _by_id(after["apprenticeships"])
    n = len(old)
    deleted, added = set(old) - set(new), set(new) - set(old)
    modified = {i for i in set(old) & set(new) if old[i] != new[i]}
    assert abs(len(deleted) / n - 0.01) < 0.003
    assert abs(len(added) / n - 0.02) < 0.003
    assert abs(len(modified) / n - 0.05) < 0.005
    assert min(added) > max(old)
    last_before = max(r["modified_date"] for r in old.values())
    for i in modified:
        assert new[i]["modified_date"] > last_before
        changed = {k for k in old[i] if old[i][k] != new[i][k]} - {"modified_date"}
        assert changed and changed <= {"email_address", "first_name", "last_name", "name"}
    assert all(new[i]["modified_date"] > last_before for i in added)
    with_projects = {p["apprenticeship_id"] for p in after["projects"]}
    assert len(added & with_projects) / len(added) > 0.7
    # projects: only statuses change, ~5%, without moving the parent's modified_date
    old_p = {p["id"]: p for p in before["projects"] if p["apprenticeship_id"] in new}
    new_p = {p["id"]: p for p in after["projects"]}
    assert set(old_p) <= set(new_p)
    changed_p = [i for i in old_p if old_p[i] != new_p[i]]
    assert all({k for k in old_p[i] if old_p[i][k] != new_p[i][k]} == {"status"} for i in changed_p)
    assert abs(len(changed_p) / len(old_p) - 0.05) < 0.006
    parents = {old_p[i]["apprenticeship_id"] for i in changed_p} - modified
    assert parents and all(old[a]["modified_date"] == new[a]["modified_date"] for a in parents)


def test_restart_with_higher_generation_serves_the_later_data() -> None:
    from sample_api.server import serve_in_background
    from sample_api.testing import walk

    for generation in (0, 1):
        with serve_in_background(scale=80, seed=4, generation=generation) as srv, requests.Session() as session:
            login(session, srv.url)
            rows = walk(session, srv.url, "/apprenticeships", 1000)
            assert rows == ground_truth(80, 4, generation)["apprenticeships"]


# ---------------------------------------------------------------- pagination properties


@pytest.fixture(scope="module")
def service() -> Service:
    return Service(build_dataset(150, 2, 1))


def _service_walk(fetch: Any, page_size: int) -> list[dict[str, Any]]:
    rows, token = [], None
    while True:
        page = orjson.loads(fetch(page_size, token))
        rows.extend(page["data"])
        token = page["pagination"]["next_token"]
        if token is None:
            return rows


@hsettings(max_examples=40, deadline=None)
@given(page_size=st.integers(1, 200), after=st.one_of(st.none(), st.text(alphabet="0123456789-T: ", max_size=19)))
def test_any_page_size_walk_returns_each_row_once(service: Service, page_size: int, after: Optional[str]) -> None:
    truth = [service.dataset.apprenticeship_record(i) for i in range(len(service.dataset))]
    rows = _service_walk(lambda size, tok: service.apprenticeships(after, size, tok), page_size)
    expected = truth if after is None else [r for r in truth if r["modified_date"] > after]
    assert rows == expected


@hsettings(max_examples=60, deadline=None)
@given(offset=st.integers(0, 2**63))
def test_token_roundtrip_and_foreign_keys(offset: int) -> None:
    codec, other = TokenCodec(), TokenCodec()
    token = codec.encode(offset)
    assert codec.decode(token) == offset
    with pytest.raises(TokenError):
        other.decode(token)


def test_negative_offsets_cannot_be_encoded() -> None:
    with pytest.raises(TokenError):
        TokenCodec().encode(-1)


# ---------------------------------------------------------------- cost per projects page


class _CountingReads:
    """A dataset column that counts the items read from it (bisect reads through __getitem__ too)."""

    def __init__(self, items: Any) -> None:
        self.items, self.reads = items, 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        self.reads += 1
        return self.items[index]


# The per-apprenticeship and per-project columns a projects page could read: a page must touch O(page + log n).
_COLUMNS = ("ids", "versions", "mdates", "proj_first", "proj_count", "statuses")


def _projects_page_reads(scale: int) -> tuple[int, int]:
    """(most column items any one projects page read, most rows any page held), over ~500 apprenticeships."""
    ds = build_dataset(scale, 1, 0)
    service = Service(ds)
    ids = [ds.ids[i] for i in range(0, len(ds), max(1, len(ds) // 500))][:500]
    counters = {name: _CountingReads(getattr(ds, name)) for name in _COLUMNS}
    for name, counter in counters.items():
        setattr(ds, name, counter)
    most_reads = most_rows = 0
    for aid in ids:
        before = sum(c.reads for c in counters.values())
        page = orjson.loads(service.projects(aid, 20, None))
        assert [row["id"] for row in page["data"]] == sorted(row["id"] for row in page["data"])
        most_reads = max(most_reads, sum(c.reads for c in counters.values()) - before)
        most_rows = max(most_rows, len(page["data"]))
    return most_reads, most_rows


def test_projects_page_costs_the_same_at_any_scale() -> None:
    """A projects page reads one binary search of the ids, the apprenticeship's project range and one status per
    row served: 100x the data adds at most 7 reads (log2 100), never a scan."""
    (small, small_rows), (large, large_rows) = _projects_page_reads(1000), _projects_page_reads(100_000)
    assert small_rows > 0 and large_rows > 0
    assert small <= 11 + 2 + small_rows, small  # ceil(log2(1000)) + 1 id reads, first and count, the statuses
    assert large <= 18 + 2 + large_rows, large  # ceil(log2(100,000)) + 1


# ---------------------------------------------------------------- serve CLI as a subprocess


def _start_cli(port: int = 0) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sample_api",
            "serve",
            "--log-level",
            "warning",
            "--port",
            str(port),
            "--scale",
            "50",
            "--seed",
            "9",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+))\n", line)
    assert match, line
    if port:
        assert int(match.group(2)) == port
    return proc, match.group(1)


def test_serve_cli_prints_its_url_and_tokens_die_with_the_process() -> None:
    proc, url = _start_cli()
    try:
        with requests.Session() as session:
            login(session, url)
            page = session.get(f"{url}/apprenticeships").json()
            assert page["data"] == ground_truth(50, 9, 0)["apprenticeships"][:20]
            token = page["pagination"]["next_token"]
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            port = int(url.rsplit(":", 1)[1])
            proc, url2 = _start_cli(port)
            answer = session.get(f"{url2}/apprenticeships", params={"pagination_token": token})
            assert answer.status_code == 500 and answer.text == "Internal Server Error"
    finally:
        proc.terminate()
        proc.wait(10)
