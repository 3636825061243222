"""Glue job parameters become the same command line the jobs take everywhere else."""

import pytest

from multiverse_etl.glue import glue_argv


def test_required_and_optional_parameters_map_to_job_flags():
    argv = [
        "script.py",
        "--JOB_NAME",
        "mv",
        "--job",
        "pipeline",
        "--env",
        "glue",
        "--mode",
        "incremental",
        "--lake_root",
        "s3://lake/x",
        "--set__api.page_size",
        "500",
    ]
    job, job_argv = glue_argv(argv)
    assert job == "pipeline"
    assert job_argv == [
        "--env",
        "glue",
        "--lake-root",
        "s3://lake/x",
        "--mode",
        "incremental",
        "--set",
        "api.page_size=500",
    ]


def test_a_missing_required_parameter_is_named():
    with pytest.raises(SystemExit, match="--env"):
        glue_argv(["script.py", "--job", "transform"])


def test_a_switch_is_a_parameter_with_a_value_and_every_jobs_flag_is_a_parameter():
    base = ["script.py", "--job", "maintain", "--env", "glue"]
    assert glue_argv([*base, "--break_lock", "true", "--no_vacuum", "false", "--days", "3"])[1] == [
        "--env",
        "glue",
        "--break-lock",
        "--days",
        "3",
    ]
    assert glue_argv(["script.py", "--job", "pipeline", "--env", "glue", "--show", "5", "--rebuild_gold", "yes"])[
        1
    ] == ["--env", "glue", "--rebuild-gold", "--show", "5"]
