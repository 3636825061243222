"""Shared fixtures: one SparkSession for the whole run, one local S3 endpoint (moto server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from multiverse_etl.config import Config
from multiverse_etl.logs import setup_logging
from support.config import make_config, sized_for_tests  # tests import make_config from here too
from support.spark_worker import (  # noqa: F401 (the controller's hooks, for `make test`'s two workers)
    list_for_scheduler,
    pytest_configure_node,
    pytest_unconfigure,
    pytest_xdist_make_scheduler,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
setup_logging("INFO")

# The spark-submit processes tests start (the CLI, a cluster's driver, the notebook's kernel) each live a few seconds
# to a minute: HotSpot's C1 compiler alone serves them better than the C2 a long job needs (test_submit.py and the
# since folded test_any_dir.py: 228 -> 153 CPU s, 136 -> 118 s, 2026-12-06; test_cluster.py gives it to its master,
# worker and executor too). Not for the tests' own long-lived session (`spark`), which it slows (226 -> 336 s on two
# Spark-heavy files). A JIT setting only: every code path is the same.
SHORT_LIVED_JVM = ("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1")
os.environ.setdefault(*SHORT_LIVED_JVM)


@pytest.fixture(scope="session")
def local_s3():
    """A real S3 endpoint on 127.0.0.1 (moto server mode) with the bucket 'multiverse-lake'."""
    from multiverse_etl.devtools.local_s3 import start_local_s3

    server = start_local_s3("multiverse-lake")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_config(local_s3) -> Config:
    """conf/local-s3.yaml pointed at the session's local S3 endpoint."""
    return make_config(f"s3://{local_s3.bucket}/tests", env="local-s3", s3={"endpoint_url": local_s3.endpoint_url})


@pytest.fixture(params=["folder", "s3"])
def storage(request, tmp_path):
    """The same tests on a folder lake and on the local S3 endpoint."""
    from multiverse_etl.storage import LocalStorage, open_storage

    if request.param == "folder":
        return LocalStorage(str(tmp_path / "lake"))
    config = request.getfixturevalue("s3_config")
    return open_storage(f"{config.lake.root}/storage-{tmp_path.name}", config.s3)


@pytest.fixture(scope="session")
def spark(local_s3, tmp_path_factory):
    """The one SparkSession of the test run, built by the library's builder (Delta + s3a on local S3).

    The event log is on (as on EMR) so that tests can check what it holds (test_pseudonymise.py).
    """
    from multiverse_etl.spark import build_spark

    config = make_config(str(PROJECT_ROOT / "lake"), env="local-s3", s3={"endpoint_url": local_s3.endpoint_url})
    config = sized_for_tests(config, **{"spark.driver.memory": "2g"})
    name, value = SHORT_LIVED_JVM
    ours = os.environ.get(name) == value  # a value of the user's own is theirs to keep
    if ours:
        del os.environ[name]
    try:
        session = build_spark(config, "multiverse-etl-tests")
    finally:
        if ours:
            os.environ[name] = value
    yield session
    session.stop()


@pytest.fixture(scope="session")
def faulted_run(spark, s3_config):
    """The shared pipeline run with every fault of the sample API at once (tests/support/scenarios.py)."""
    from support.scenarios import faulted_pipeline_run

    return faulted_pipeline_run(spark, s3_config)


@pytest.fixture(scope="session")
def crash_chain_run(spark, tmp_path_factory):
    """The shared chain of transform crashes and concurrent starts (tests/support/scenarios.py)."""
    from support.scenarios import crash_chain

    return crash_chain(spark, tmp_path_factory.mktemp("crash-chain"))


def pytest_collection_modifyitems(config, items):
    """Every test that uses the SparkSession is marked `spark` (what `make test-spark4` runs); under `make test`'s two
    workers, all of them run in one (support/spark_worker.py)."""
    spark_tests = []
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)
            spark_tests.append(item.nodeid)
    list_for_scheduler(config, spark_tests)
