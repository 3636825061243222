"""`make test`'s two workers: every test that uses the SparkSession runs in one worker, the others beside it.

A small suite of its own is run by pytest-xdist in a child process: a session fixture named `spark` (a stand-in: which
tests use it is what the scheduler is told), tests in three modules that use it directly or through a module fixture,
and plain tests. Each test records which worker ran it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

CONFTEST = """
import os
import pytest
from support.spark_worker import (
    list_for_scheduler, pytest_configure_node, pytest_unconfigure, pytest_xdist_make_scheduler,
)

@pytest.fixture(scope="session")
def spark():
    return os.getpid()

@pytest.fixture(autouse=True)
def record(request):
    with open(os.environ["RAN_AT"], "a") as out:
        out.write(f"{request.node.nodeid} {os.environ.get('PYTEST_XDIST_WORKER', '-')}\\n")

def pytest_collection_modifyitems(config, items):
    list_for_scheduler(config, [item.nodeid for item in items if "spark" in item.fixturenames])
"""

SPARK_MODULE = """
import pytest

@pytest.fixture(scope="module")
def lake(spark):
    return spark

@pytest.mark.parametrize("n", range(4))
def test_direct(spark, n):
    assert spark

@pytest.mark.parametrize("n", range(3))
def test_through_a_fixture(lake, n):
    assert lake
"""

PLAIN_MODULE = """
import time
import pytest

@pytest.mark.parametrize("n", range(6))
def test_plain(n):
    time.sleep(0.05)
"""


def test_the_spark_tests_run_in_one_worker_and_the_others_beside_them(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_a_spark.py").write_text(SPARK_MODULE)
    (suite / "test_b_plain.py").write_text(PLAIN_MODULE)
    (suite / "test_c_spark.py").write_text(SPARK_MODULE)
    (suite / "test_d_plain.py").write_text(PLAIN_MODULE)
    ran_at = tmp_path / "ran_at.txt"
    own_tmp = tmp_path / "tmp"
    own_tmp.mkdir()
    tests = str(Path(__file__).resolve().parent)  # the child imports this checkout's `support`, as this test does
    pythonpath = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "RAN_AT": str(ran_at), "TMPDIR": str(own_tmp), "PYTHONPATH": pythonpath}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q", str(suite)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    workers: dict[str, set[str]] = defaultdict(set)
    for line in ran_at.read_text().splitlines():
        nodeid, worker = line.split(" ")
        workers["spark" if "_spark.py" in nodeid else "plain"].add(worker)
        workers[nodeid].add(worker)
    assert len([k for k in workers if "::" in k]) == 2 * 7 + 2 * 6  # every test ran, once
    assert all(len(w) == 1 for k, w in workers.items() if "::" in k)
    [spark_worker] = workers["spark"]  # all 14 Spark tests in one worker
    assert spark_worker.startswith("gw")
    assert workers["plain"] - {spark_worker}  # the other worker ran plain tests
    assert not list(own_tmp.glob("pytest-spark-nodeids-*"))  # the controller removed its handshake folder
