"""One error root: every failure a user can cause is an EtlError, ends in one line and has its exit code."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import multiverse_etl
from multiverse_etl.cli import run_job
from multiverse_etl.config import ConfigError
from multiverse_etl.errors import EXIT_FAILED, EXIT_USAGE, EtlError
from multiverse_etl.lock import LakeLocked
from multiverse_etl.signals import Stopped
from multiverse_etl.submit import SubmitError

ROOT = Path(__file__).resolve().parents[1]


def library_exceptions() -> list[type[BaseException]]:
    """Every exception class the library defines (all its modules imported)."""
    for module in pkgutil.walk_packages(multiverse_etl.__path__, "multiverse_etl."):
        importlib.import_module(module.name)
    found, todo = [], [BaseException]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("multiverse_etl."):
                found.append(sub)
    return found


def test_every_exception_the_library_defines_is_an_etl_error_and_none_is_marked_by_hand():
    classes = library_exceptions()
    assert len(classes) >= 19  # the walk found them (not an empty pass)
    outside = {cls.__name__ for cls in classes if not issubclass(cls, EtlError)}
    assert outside == {"Stopped"}  # a stop signal, not a failure: a BaseException on purpose
    assert [cls.__name__ for cls in classes if "user_facing" in vars(cls)] == []


def test_usage_errors_exit_2_and_failures_exit_1():
    assert ConfigError("x").exit_code == SubmitError("x").exit_code == EXIT_USAGE == 2
    assert LakeLocked("x").exit_code == EtlError("x").exit_code == EXIT_FAILED == 1


def test_a_message_of_several_lines_is_shown_as_one():
    error = EtlError("counts do not add up:\n  projects: landed 3, bronze 2\n  programmes: landed 1, bronze 0\n")
    assert error.user_message() == "counts do not add up:; projects: landed 3, bronze 2; programmes: landed 1, bronze 0"
    assert ConfigError("'api.page_size' must be an integer").user_message().startswith("bad configuration: ")


def raising(exc: BaseException):
    def body() -> int:
        raise exc

    return body


def test_run_job_ends_a_user_error_with_one_line_and_its_exit_code(caplog):
    caplog.set_level(logging.INFO, logger="multiverse_etl")
    assert run_job("transform", raising(LakeLocked("the lake is locked by p-1"))) == 1
    assert run_job("transform", raising(ConfigError("'api.url' is wrong"))) == 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "transform failed: the lake is locked by p-1",
        "transform failed: bad configuration: 'api.url' is wrong",
    ]
    assert not any(r.exc_info for r in errors)  # no traceback


def test_run_job_shows_a_bugs_traceback_always_and_a_user_errors_only_at_debug(caplog):
    caplog.set_level(logging.INFO, logger="multiverse_etl")
    assert run_job("extract", raising(KeyError("apprenticeships"))) == 1
    assert caplog.records[-1].exc_info
    caplog.set_level(logging.DEBUG, logger="multiverse_etl")
    assert run_job("extract", raising(LakeLocked("locked"))) == 1
    assert caplog.records[-1].exc_info


def test_a_stop_signal_is_not_a_failure_and_keeps_its_own_exit_code():
    assert run_job("pipeline", raising(Stopped(15))) == 143


def run_entry(job: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "jobs" / f"{job}.py"), *args], capture_output=True, text=True, timeout=120
    )


def test_a_job_process_exits_with_the_errors_code_and_one_error_line(tmp_path):
    refused = run_entry("maintain", "--env", "local", "--lake-root", str(tmp_path), "--retention-hours", "1")
    assert refused.returncode == 1, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "maintain failed: " in errors[0] and "Traceback" not in refused.stderr
    debug = run_entry(
        "maintain", "--env", "local", "--lake-root", str(tmp_path), "--retention-hours", "1", "--log-level", "DEBUG"
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "MaintenanceRefused" in debug.stderr
    bad_config = run_entry("maintain", "--env", "local", "--set", "maintain.optimize_days=lots")
    assert bad_config.returncode == 2 and "bad configuration: " in bad_config.stderr
    assert "Traceback" not in bad_config.stderr


@pytest.mark.parametrize("argv", [["glue_job.py", "--job", "transform", "--env", "glue", "--set__api.password", "x"]])
def test_the_glue_entry_point_refuses_a_secret_with_exit_code_2(argv):
    done = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "glue_job.py"), *argv[1:]], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "glue job: error: bad configuration: " in done.stderr
