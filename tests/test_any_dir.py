"""spark-submit.sh from any working directory: each job finds its env's config, and a relative lake root is
relative to the project root (the README's rule), not to wherever the scheduler started the job."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from sample_api.server import serve_in_background

ROOT = Path(__file__).resolve().parents[1]
SMALL_SPARK = [
    "--set",
    "transform.shuffle_partitions=2",
    "--set",
    "spark.conf.spark.driver.memory=1g",
    "--set",
    "spark.conf.spark.databricks.delta.snapshotPartitions=2",
    "--set",
    "spark.conf.spark.ui.enabled=false",
]


def run_from(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MV_PROJECT_ROOT", "MV_CONF_DIR", "PYTHONPATH")}
    return subprocess.run([script, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_extract_transform_and_smoke_run_from_another_directory(tmp_path):
    elsewhere = tmp_path / "scheduler" / "cwd"
    elsewhere.mkdir(parents=True)
    lake = tmp_path / "lake"
    relative_to_root = os.path.relpath(lake, ROOT)  # means `lake` only if resolved against the project root
    assert not (elsewhere / relative_to_root).resolve() == lake
    by_relative_path = os.path.relpath(ROOT / "spark-submit.sh", elsewhere)
    by_absolute_path = str(ROOT / "spark-submit.sh")
    with serve_in_background(scale=12, seed=3) as api:
        extract = run_from(
            elsewhere,
            by_relative_path,
            "extract",
            "--env",
            "local",
            "--lake-root",
            relative_to_root,
            "--api-url",
            api.url,
        )
    assert extract.returncode == 0, extract.stderr[-2000:]
    run_id = re.search(r"extract committed run (\S+): ", extract.stdout).group(1)
    assert (lake / "raw" / "_manifests" / f"{run_id}.json").is_file()

    transform = run_from(
        elsewhere, by_absolute_path, "transform", "--env", "local", "--lake-root", relative_to_root, *SMALL_SPARK
    )
    output = transform.stdout + transform.stderr
    assert transform.returncode == 0, output[-3000:]
    row = next(
        line.split()
        for line in transform.stdout.splitlines()
        if line.startswith(run_id) and line.split()[1] == "apprenticeships"
    )
    assert row[2] == "12" and row[-1] == "yes"  # landed 12, reconciled
    assert (lake / "silver" / "apprenticeships" / "_delta_log").is_dir()

    smoke = run_from(
        elsewhere, by_relative_path, "smoke", "--env", "local", "--lake-root", relative_to_root, *SMALL_SPARK
    )
    assert smoke.returncode == 0, (smoke.stdout + smoke.stderr)[-3000:]
    assert "smoke row: 3 Łukasz 2024-03-06" in smoke.stdout
    assert (lake / "_smoke" / "events" / "_delta_log").is_dir()
    # Nothing written where the job was started (Spark leaves only its empty spark-warehouse folder).
    assert not [path for path in elsewhere.rglob("*") if path.is_file()]
