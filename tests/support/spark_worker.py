"""`make test` on two pytest-xdist workers: every test that uses the SparkSession in one of them, the rest beside it.

The Spark tests share one session and its module fixtures (a lake built by several transforms, a cluster): split over
two workers, each would build its own session, warm up its own JIT and run every module fixture twice, which costs
more than the overlap saves. The other tests (HTTP servers, spark-submit processes, locks) mostly wait or run in child
processes; beside the Spark worker they fill the second core.

xdist's own `--dist loadgroup` would do this from an `xdist_group` mark, but it tells the controller the group by
renaming each test's node id, which pytest 9 no longer reads (the groups are lost, the Spark tests spread). Here the
workers tell the controller which node ids use the session through a file, after collection and before any test is
scheduled: every worker collects (and writes its list) before the controller schedules the first test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import pytest
from xdist.scheduler import LoadScopeScheduling

SPARK_SCOPE = "spark"
INPUT_KEY = "spark_nodeids_dir"


def new_handshake_dir() -> str:
    return tempfile.mkdtemp(prefix="pytest-spark-nodeids-")


def write_spark_nodeids(directory: str, worker_id: str, nodeids: Iterable[str]) -> None:
    """One file per worker, complete or absent (written aside, then renamed)."""
    target = Path(directory) / f"{worker_id}.txt"
    aside = target.with_suffix(".tmp")
    aside.write_text("".join(f"{nodeid}\n" for nodeid in nodeids))
    os.replace(aside, target)


def read_spark_nodeids(directory: str) -> frozenset[str]:
    lists = list(Path(directory).glob("*.txt"))
    if not lists:
        raise RuntimeError(f"no pytest worker listed its Spark tests in {directory}")
    return frozenset(line for path in lists for line in path.read_text().splitlines() if line)


class SparkInOneWorker(LoadScopeScheduling):
    """Scopes: one for every Spark test together, one per other test (those balance freely over the workers).

    `--loadscope-reorder` (xdist's default) hands out the largest scope first, so the Spark scope starts at once and its
    worker takes nothing else until it is nearly done.
    """

    def __init__(self, config, log=None, directory: str = "") -> None:
        super().__init__(config, log)
        self._directory = directory
        self._spark: frozenset[str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._spark is None:  # first called by schedule(), once every worker has collected
            self._spark = read_spark_nodeids(self._directory)
        return SPARK_SCOPE if nodeid in self._spark else nodeid


def list_for_scheduler(config, spark_nodeids: Iterable[str]) -> None:
    """In a worker (from `pytest_collection_modifyitems`): tell the controller which tests use the session."""
    directory = getattr(config, "workerinput", {}).get(INPUT_KEY)
    if directory:
        write_spark_nodeids(directory, config.workerinput["workerid"], spark_nodeids)


# The controller's hooks; a conftest imports them (they are optional: xdist may be off, `-p no:xdist`).
@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """Each worker learns where to list its Spark tests (called before the workers start)."""
    if not hasattr(node.config, "spark_nodeids_dir"):
        node.config.spark_nodeids_dir = new_handshake_dir()
    node.workerinput[INPUT_KEY] = node.config.spark_nodeids_dir


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log) -> SparkInOneWorker:
    """The Spark tests together in one worker, whatever `--dist` says."""
    return SparkInOneWorker(config, log, config.spark_nodeids_dir)


def pytest_unconfigure(config) -> None:
    directory = getattr(config, "spark_nodeids_dir", None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
