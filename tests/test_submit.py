"""spark-submit.sh: the command it builds per environment, its errors, and real local runs."""

import json
import os
import re
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from multiverse_etl.config import ConfigError
from multiverse_etl.lock import LOCK_KEY
from multiverse_etl.submit import JOBS, SubmitError, build_lib_zip, plan
from sample_api.dump import ground_truth
from sample_api.server import serve_in_background
from support.processes import scheduler_cwd

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "spark-submit.sh"


def run_script(*args, timeout=300, env=None):
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env or os.environ.copy()
    )


def run_from(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """The script as a scheduler starts it: from a working directory of its own, without this checkout's
    environment (spark-submit.sh finds the project, its conf/ and its library by itself)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MV_PROJECT_ROOT", "MV_CONF_DIR", "PYTHONPATH")}
    return subprocess.run([script, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def test_local_extract_is_plain_python_and_spark_jobs_get_packages_and_the_ivy_cache():
    assert plan("extract", ["--env", "local"], python="/venv/bin/python") == [
        "/venv/bin/python",
        str(ROOT / "jobs/extract.py"),
        "--env",
        "local",
    ]
    command = plan("transform", ["--env", "local"], python=sys.executable)
    assert command[0].endswith("spark-submit")
    assert command[command.index("--master") + 1] == "local[*]"
    assert "io.delta:delta-spark" in command[command.index("--packages") + 1]
    assert command[command.index("--conf") + 1] == f"spark.jars.ivy={ROOT}/.cache/ivy"
    assert command[command.index("--files") + 1] == str(ROOT / "conf/local.yaml")
    assert "-Duser.timezone=UTC" in command[command.index("--driver-java-options") + 1]  # the JVM in UTC (spark.py)
    assert command[-3:] == [str(ROOT / "jobs/transform.py"), "--env", "local"]


def test_emr_uses_the_platform_jars_and_ships_the_library_zip_and_config():
    command = plan("pipeline", ["--env", "emr", "--mode", "incremental"], python=sys.executable)
    assert "--packages" not in command and "--master" not in command
    assert command[command.index("--py-files") + 1].endswith("dist/multiverse_etl.zip")
    assert command[-4:] == [str(ROOT / "jobs/pipeline.py"), "--env", "emr", "--mode", "incremental"][-4:]


def test_bad_job_missing_env_and_unknown_env_fail_clearly():
    with pytest.raises(SubmitError, match="unknown job 'bogus'"):
        plan("bogus", ["--env", "local"])
    with pytest.raises(SubmitError, match="required: --env"):
        plan("transform", [])
    with pytest.raises(ConfigError, match="no config for env 'mars'"):
        plan("transform", ["--env", "mars"])


def test_script_help_and_errors_exit_codes():
    ok = run_script("--help")
    assert ok.returncode == 0 and all(job in ok.stdout for job in JOBS)
    bad = run_script("transform", "--env", "mars")
    assert bad.returncode == 2 and "no config for env 'mars'" in bad.stderr
    bad_key = run_script("transform", "--env", "local", "--set", "api.page_size=lots", "--dry-run")
    assert bad_key.returncode == 2 and "'api.page_size' must be an integer" in bad_key.stderr


def test_library_zip_imports_in_a_clean_interpreter(tmp_path):
    archive = build_lib_zip(ROOT, tmp_path)
    names = zipfile.ZipFile(archive).namelist()
    assert "multiverse_etl/config.py" in names and "multiverse_etl/extract/__init__.py" in names
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import multiverse_etl, multiverse_etl.config, multiverse_etl.landing, multiverse_etl.extract, multiverse_etl.transform;"
        "assert multiverse_etl.__file__.startswith(sys.argv[1]), multiverse_etl.__file__;"
        "print('imported from', multiverse_etl.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code, str(archive)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "imported from " + str(archive) in result.stdout


def test_maintain_refuses_a_retention_below_the_safe_minimum_through_spark_submit(tmp_path):
    """(The smoke job's real run through spark-submit.sh, from another directory: test_loopback.py.)"""
    elsewhere, relative_to_root = scheduler_cwd(tmp_path, tmp_path / "lake")
    refused = run_from(
        elsewhere, str(SCRIPT), "maintain", "--env", "local", "--lake-root", relative_to_root, "--retention-hours", "1"
    )
    # spark-submit's Python runner sends the driver's stderr to stdout
    assert refused.returncode == 1 and "below the safe minimum" in refused.stdout + refused.stderr
    assert not [path for path in elsewhere.rglob("*") if path.is_file()]


# Test-sized Spark: 2 shuffle partitions, small Delta snapshots, no UI.
SMALL_SPARK = [
    "--set",
    "transform.shuffle_partitions=2",
    "--set",
    "spark.conf.spark.driver.memory=1g",
    "--set",
    "spark.conf.spark.databricks.delta.snapshotPartitions=1",
    "--set",
    "spark.conf.spark.ui.enabled=false",
]


def summary_row(output: str, run_id: str, entity: str) -> dict:
    """One line of the transform's summary table, by its column titles."""
    lines = output.splitlines()
    header = next(line for line in lines if line.startswith("run ") and line.rstrip().endswith("ok")).split()
    row = next(line.split() for line in lines if line.startswith(run_id) and line.split()[1] == entity)
    return dict(zip(header, row))


@pytest.mark.slow
def test_extract_transform_and_pipeline_run_through_spark_submit_locally_from_another_directory(tmp_path):
    """extract lands run A; transform is refused while another writer holds the lake; pipeline lands run B and
    loads A and B; transform then finds nothing to load. Started as a scheduler starts them: from a working
    directory elsewhere (by a relative and an absolute path), the lake root relative to the project root."""
    lake = tmp_path / "lake"
    elsewhere, relative_to_root = scheduler_cwd(tmp_path, lake)
    by_relative_path, by_absolute_path = os.path.relpath(SCRIPT, elsewhere), str(SCRIPT)
    local = ("--env", "local", "--lake-root", relative_to_root)
    with serve_in_background(scale=25, seed=5) as api:
        extract = run_from(elsewhere, by_relative_path, "extract", *local, "--api-url", api.url)
        assert extract.returncode == 0, extract.stderr[-2000:]
        first_run = re.search(r"extract committed run (\S+): ", extract.stdout).group(1)
        manifest = json.loads((lake / "raw" / "_manifests" / f"{first_run}.json").read_text())
        assert manifest["run_id"] == first_run and manifest["entities"]["apprenticeships"]["records"] == 25

        # A live writer holds the lake: transform is refused, naming it, before Spark starts; nothing is loaded.
        holder = {
            "owner": "another-pipeline",
            "host": socket.gethostname(),
            "pid": os.getppid(),
            "acquired_at": "2026-01-01T00:00:00+00:00",
            "ttl_s": 10**9,
        }
        (lake / LOCK_KEY).parent.mkdir(parents=True, exist_ok=True)
        (lake / LOCK_KEY).write_text(json.dumps(holder))
        refused = run_from(elsewhere, by_absolute_path, "transform", *local, *SMALL_SPARK)
        assert refused.returncode != 0 and "locked by another-pipeline" in refused.stdout + refused.stderr
        assert "ready (master=" not in refused.stdout + refused.stderr and not (lake / "silver").exists()
        (lake / LOCK_KEY).unlink()

        pipeline = run_from(
            elsewhere, by_absolute_path, "pipeline", *local, "--api-url", api.url, "--show", "3", *SMALL_SPARK
        )
    assert pipeline.returncode == 0, pipeline.stdout[-3000:] + pipeline.stderr[-3000:]
    second_run = re.search(r"extract committed run (\S+): ", pipeline.stdout).group(1)
    assert second_run != first_run
    loaded = summary_row(pipeline.stdout, first_run, "apprenticeships")  # the pending run A first
    assert (loaded["landed"], loaded["inserted"], loaded["live"], loaded["ok"]) == ("25", "25", "25", "yes")
    again = summary_row(pipeline.stdout, second_run, "apprenticeships")  # then B: the same source, nothing changes
    assert (again["same"], again["changed"], again["inserted"], again["updated"], again["live"], again["ok"]) == (
        "25",
        "0",
        "0",
        "0",
        "25",
        "yes",
    )
    gold = [line for line in pipeline.stdout.splitlines() if re.match(r"^\|\s*\d+\s*\|", line)]
    source_ids = sorted(a["id"] for a in ground_truth(25, 5, 0)["apprenticeships"])
    assert [int(line.split("|")[1]) for line in gold] == source_ids[:3]

    transform = run_from(elsewhere, by_relative_path, "transform", *local, *SMALL_SPARK)
    assert transform.returncode == 0, transform.stdout[-3000:] + transform.stderr[-3000:]
    assert "runs loaded: 0; gold unchanged" in transform.stdout
    assert not (lake / LOCK_KEY).exists()
    assert (lake / "silver" / "apprenticeships" / "_delta_log").is_dir()
    # Nothing written where the jobs were started (Spark leaves only its empty spark-warehouse folder).
    assert not [path for path in elsewhere.rglob("*") if path.is_file()]
