"""Local means loopback: every socket a local Spark job listens on (driver, block manager, UI) is 127.0.0.1.

The job watched is `spark-submit.sh smoke` started as a scheduler starts it (from a working directory of its own, the
lake root relative to the project root), so that one JVM start serves both checks (test_submit.py's other real runs
start from elsewhere too)."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import time
from pathlib import Path

from support.processes import scheduler_cwd

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def _address(hex_address: str) -> str:
    """/proc/net/tcp{,6} 'local_address' (little-endian hex words) as text."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(struct.pack("<I", *struct.unpack(">I", raw[i : i + 4])) for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words)


def listening_sockets() -> dict[str, tuple[str, int]]:
    """Socket inode -> (address, port) of every listening TCP socket on the machine."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                host, port = fields[1].split(":")
                found[fields[9]] = (_address(host), int(port, 16))
    return found


def session_pids(root: int) -> list[int]:
    """`root` and every process descending from it (the job runs its Spark child in a session of its own, so that
    a signal reaches the Python driver: a session or process group would miss it)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    return sorted(found)


def listening_of(session: int) -> set[tuple[str, int]]:
    """(address, port) of every socket a process of the job's tree listens on."""
    sockets = listening_sockets()
    found = set()
    for pid in session_pids(session):
        try:
            links = [os.readlink(f) for f in (Path(f"/proc/{pid}/fd")).iterdir()]
        except OSError:
            continue
        for link in links:
            match = re.fullmatch(r"socket:\[(\d+)\]", link)
            if match and match.group(1) in sockets:
                found.add(sockets[match.group(1)])
    return found


def test_a_local_spark_job_started_from_another_directory_listens_on_loopback_only_ui_included(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MV_", "SPARK_LOCAL_IP")) and k != "PYTHONPATH"}
    lake = tmp_path / "lake"
    elsewhere, relative_to_root = scheduler_cwd(tmp_path, lake)
    command = [
        os.path.relpath(ROOT / "spark-submit.sh", elsewhere),
        "smoke",
        "--env",
        "local",
        "--lake-root",
        relative_to_root,
        "--set",
        "spark.conf.spark.driver.memory=1g",
        "--set",
        f"logging.dir={tmp_path / 'logs'}",
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=elsewhere, start_new_session=True
    )
    seen: set[tuple[str, int]] = set()
    try:
        while proc.poll() is None:
            seen |= listening_of(proc.pid)
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.stdout.read().decode()
    assert proc.returncode == 0, output[-3000:]
    assert "smoke row: 3 Łukasz 2024-03-06" in output
    assert (lake / "_smoke" / "events" / "_delta_log").is_dir()  # the lake root resolved against the project root
    # Nothing written where the job was started (Spark leaves only its empty spark-warehouse folder).
    assert not [path for path in elsewhere.rglob("*") if path.is_file()]
    ui = re.search(r"ui=http://([\d.]+):(\d+)", output)
    assert ui and ui.group(1) == "127.0.0.1", output[-3000:]  # the UI is on, and the README's address is right
    assert int(ui.group(2)) in {port for _, port in seen}  # the UI's socket was among those watched
    assert len(seen) >= 3, seen  # driver RPC, block manager, UI at least
    assert {address for address, _ in seen} <= LOOPBACK, seen
    assert "resolves to a loopback address" not in output
    logs = list((tmp_path / "logs").glob("smoke-*.log"))
    assert len(logs) == 1 and "Running Spark version" in logs[0].read_text()  # Spark's INFO is in the file…
    assert "Running Spark version" not in output  # …not on the console
