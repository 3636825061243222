"""The job registry: what each job accepts, and that every entry point reads the same registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from multiverse_etl import glue, submit
from multiverse_etl.entrypoints import JOBS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("job", ["transform", "pipeline"])
def test_transform_and_pipeline_take_rebuild_gold_and_merge_by_default(job):
    assert JOBS[job].parser().parse_args(["--env", "local", "--rebuild-gold"]).rebuild_gold is True
    assert JOBS[job].parser().parse_args(["--env", "local"]).rebuild_gold is False


def test_maintain_and_extract_do_not_take_rebuild_gold(capsys):
    for job in ("maintain", "extract"):
        with pytest.raises(SystemExit):
            JOBS[job].parser().parse_args(["--env", "local", "--rebuild-gold"])
    assert "--rebuild-gold" in capsys.readouterr().err


def test_break_lock_is_taken_exactly_by_the_jobs_that_hold_the_writer_lock():
    for job in JOBS.values():
        flags = job.parser().format_help()
        assert ("--break-lock" in flags) == job.takes_writer_lock, job.name
    assert {name for name, job in JOBS.items() if job.takes_writer_lock} == {"transform", "pipeline", "maintain"}


def test_every_job_has_an_entry_point_that_runs_it_by_name():
    scripts = {path.stem for path in (ROOT / "jobs").glob("*.py")} - {"glue_job"}
    assert scripts == set(JOBS)
    for name in JOBS:
        assert f'main("{name}")' in (ROOT / "jobs" / f"{name}.py").read_text()


def test_spark_submit_help_lists_the_registry():
    text = submit.usage()
    for name, job in JOBS.items():
        assert re.search(rf"^  {name}\s+{re.escape(job.help)}$", text, re.M), name


def test_a_new_flag_of_a_job_is_a_glue_parameter_without_touching_glue():
    parameters = glue.job_parameters()
    assert {"lake_root", "api_url", "mode", "resume", "days", "retention_hours", "break_lock", "show"} <= set(
        parameters
    )
    assert not {"env", "set", "help"} & set(parameters)


def readme_job_table() -> dict[str, str]:
    """The README's job table (header `| job | what it does |`), as {job: text}."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("| job | what it does |") + 2  # past the header and its |---| line
    table: dict[str, str] = {}
    for line in lines[start:]:
        row = re.fullmatch(r"\| `(\w+)` \| (.+) \|", line)
        if row is None:
            break
        table[row.group(1)] = row.group(2)
    return table


def test_the_readme_job_table_is_the_registry():
    assert readme_job_table() == {name: job.help for name, job in JOBS.items()}
