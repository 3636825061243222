"""A lake that cannot be used ends the job in one clear line (exit 1, no traceback) naming what to check;
the traceback comes back only with --log-level DEBUG. And a bad override is blamed on where it came from."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from multiverse_etl.config import ConfigError, load_config
from multiverse_etl.devtools.local_s3 import free_port

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "spark-submit.sh"
# No credentials anywhere but in what a test passes (no ~/.aws, no instance metadata).
NO_AWS = {
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def run_job(
    *args: str, env_extra: dict | None = None, drop_aws_keys: bool = False, job_file: str = ""
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not (drop_aws_keys and k.startswith("AWS_"))}
    env.update(NO_AWS, **(env_extra or {}))
    command = [sys.executable, str(ROOT / "jobs" / job_file), *args] if job_file else [str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The job failed with exit 1 and exactly one ERROR line, and no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-2000:]
    assert "Traceback" not in output, output[-2000:]
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert len(errors) == 1, output[-2000:]
    return errors[0]


def test_a_lake_folder_that_cannot_be_created_is_one_line_naming_it_and_debug_brings_the_traceback(tmp_path):
    line = one_error_line(run_job("extract", "--env", "local", "--lake-root", "/proc/nope"))
    assert "extract failed: lake root /proc/nope cannot be created or written" in line
    assert "check that lake.root / --lake-root" in line
    debug = run_job("extract", "--env", "local", "--lake-root", "/proc/nope", "--log-level", "DEBUG")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "StorageError" in debug.stderr


def test_a_lake_under_a_file_fails_before_spark_starts_in_transform(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_job("--env", "local", "--lake-root", str(blocker / "lake"), job_file="transform.py")
    line = one_error_line(result)
    assert f"transform failed: lake root {blocker / 'lake'} cannot be created or written" in line
    assert "Not a directory" in line
    assert "ready (master=" not in result.stdout + result.stderr


def s3_args(endpoint: str, root: str) -> list[str]:
    return ["extract", "--env", "local-s3", "--lake-root", root, "--set", f"s3.endpoint_url={endpoint}"]


def test_a_missing_bucket_is_named(local_s3):
    line = one_error_line(run_job(*s3_args(local_s3.endpoint_url, "s3://no-such-bucket/lake")))
    assert "bucket 'no-such-bucket' does not exist at " + local_s3.endpoint_url in line
    assert "create it, or fix lake.root" in line


def test_missing_credentials_are_named(local_s3):
    args = [
        *s3_args(local_s3.endpoint_url, f"s3://{local_s3.bucket}/lake"),
        "--set",
        "s3.access_key_id=",
        "--set",
        "s3.secret_access_key=",
    ]
    line = one_error_line(run_job(*args, drop_aws_keys=True))
    assert f"no AWS credentials found for s3://{local_s3.bucket}/lake" in line and "AWS_ACCESS_KEY_ID" in line


def test_an_unreachable_endpoint_is_named():
    port = free_port()  # nothing listens there
    line = one_error_line(run_job(*s3_args(f"http://127.0.0.1:{port}", "s3://multiverse-lake/lake")))
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{port}" in line and "check s3.endpoint_url" in line


@pytest.fixture
def s3_with_auth():
    """A second moto server that checks credentials against its (empty) IAM: every key is refused."""
    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="0")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "moto server did not start"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_refused_credentials_are_named(s3_with_auth):
    line = one_error_line(run_job(*s3_args(s3_with_auth, "s3://multiverse-lake/lake")))
    assert "S3 refused the credentials (InvalidAccessKeyId)" in line and "AWS_ACCESS_KEY_ID" in line
    assert "testing" not in line.split("failed:", 1)[1]  # the key itself is never printed


def test_a_bad_override_is_blamed_on_the_flag_or_the_variable_not_the_file():
    with pytest.raises(ConfigError, match=r"^command line \(--set or a flag\): 'api.page_size' must be an integer"):
        load_config("local", {"api.page_size": "lots"}, environ={})
    with pytest.raises(
        ConfigError, match=r"^environment variable MV__API__PAGE_SIZE: 'api.page_size' must be at least 1"
    ):
        load_config("local", environ={"MV__API__PAGE_SIZE": "0"})
    with pytest.raises(ConfigError, match=r"^environment variable MV_API_URL: 'api.url' must start with http"):
        load_config("local", environ={"MV_API_URL": "ftp://x"})
    with pytest.raises(ConfigError, match=r"^command line \(--set or a flag\): unknown key 'api.nope'"):
        load_config("local", {"api.nope": "1"}, environ={})


def test_a_bad_value_in_the_file_is_still_blamed_on_the_file(tmp_path):
    conf = tmp_path / "conf" / "mine.yaml"
    conf.parent.mkdir()
    conf.write_text("lake:\n  root: lake\napi:\n  page_size: lots\n")
    with pytest.raises(ConfigError, match=rf"^{conf}: 'api.page_size' must be an integer"):
        load_config(str(conf), {"api.concurrency": "8"}, environ={})
