"""What `spark-submit.sh` runs: the command line for a job in an environment, then exec.

Locally the extraction is plain Python (it needs no Spark); the Spark jobs go through the venv's
spark-submit with the Maven packages and the project's Ivy cache. On a cluster (EMR master node)
the jobs go through the platform's spark-submit with the library zipped for --py-files and the
environment's YAML shipped with --files.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import NoReturn, Optional, Sequence

from .config import PROJECT_ROOT, Config
from .console import run_job_process
from .entrypoints import JOBS, Job
from .errors import EXIT_USAGE, EtlError
from .ids import new_run_id
from .logs import RUN_ID_ENV
from .spark import default_packages, loopback_env, spark_conf

# Settings the JVM needs at launch: they must be on the spark-submit line, not in the builder.
LAUNCH_CONFS = {"spark.driver.memory": "--driver-memory", "spark.executor.memory": "--executor-memory"}
DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"


class SubmitError(EtlError):
    """spark-submit.sh was asked for something it cannot run (an unknown job, no spark-submit): nothing started."""

    exit_code = EXIT_USAGE


def usage() -> str:
    jobs = "\n".join(f"  {name:<10} {job.help}" for name, job in JOBS.items())
    return (
        "usage: ./spark-submit.sh <job> --env <env> [job options]\n\n"
        f"jobs:\n{jobs}\n\n"
        "envs: local, local-s3, emr, glue (conf/<env>.yaml) or a path to a YAML file\n"
        "options for every job: --lake-root URI, --set KEY=VALUE, --log-level LEVEL, --log-format text|json,\n"
        "  --dry-run (print the command)\n"
        "`./spark-submit.sh <job> --help` lists a job's own options."
    )


def build_lib_zip(project_root: Path = PROJECT_ROOT, out_dir: Optional[Path] = None) -> Path:
    """Zip lib/multiverse_etl for --py-files (what EMR and Glue import)."""
    out_dir = out_dir or project_root / "dist"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "multiverse_etl.zip"
    source = project_root / "lib"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((source / "multiverse_etl").rglob("*.py")):
            archive.write(path, path.relative_to(source).as_posix())
    return target


class _RaisingParser(argparse.ArgumentParser):
    """A job's parser whose mistakes raise SubmitError (one line, exit code 2) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise SubmitError(f"{message} (`{self.prog} --help` lists its options)")


def parse_job_argv(name: str, argv: Sequence[str]) -> tuple[Job, argparse.Namespace]:
    """The job and its arguments, parsed by the job's own parser (the one jobs/<job>.py uses), plus --dry-run."""
    job = JOBS.get(name)
    if job is None:
        raise SubmitError(f"unknown job '{name}'; jobs: {', '.join(JOBS)}")
    parser = job.parser(_RaisingParser)
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    return job, parser.parse_args(list(argv))


def is_local(config: Config) -> bool:
    return (config.spark.master or "").startswith("local")


def plan(job: str, argv: Sequence[str], python: str = sys.executable, project_root: Path = PROJECT_ROOT) -> list[str]:
    """The command that runs `job` with `argv` (which holds --env) in its environment."""
    return prepare(job, argv, python, project_root)[0]


def spark_log_file(
    job: str, config: Config, run_id: str, log_level: str, project_root: Path = PROJECT_ROOT
) -> Optional[Path]:
    """Where Spark's and Ivy's own output goes for this run, or None: the console gets all of it.

    None on EMR/Glue (logging.spark_output: console: the platform collects everything), for the local
    extraction (no Spark), and with --log-level DEBUG (everything back on the console).
    """
    if config.logging.spark_output != "file" or log_level == "DEBUG":
        return None
    if JOBS[job].plain_python_locally and is_local(config):
        return None
    folder = Path(config.logging.dir).expanduser()
    return (folder if folder.is_absolute() else project_root / folder) / f"{job}-{run_id}.log"


def prepare(
    name: str, argv: Sequence[str], python: str = sys.executable, project_root: Path = PROJECT_ROOT
) -> tuple[list[str], Config]:
    """The command for job `name` and the config it will run with (a bad flag or config fails here, before
    anything starts)."""
    job, args = parse_job_argv(name, argv)
    config = job.config(args)
    return command_for(job, config, argv, python, project_root), config


def command_for(
    job: Job, config: Config, argv: Sequence[str], python: str = sys.executable, project_root: Path = PROJECT_ROOT
) -> list[str]:
    """spark-submit (or, for a local extract, python) with what the environment needs, then the job's entry point
    and its own argv (without --dry-run)."""
    job_argv = [arg for arg in argv if arg != "--dry-run"]
    entry = str(project_root / "jobs" / f"{job.name}.py")
    if job.plain_python_locally and is_local(config):
        return [python, entry, *job_argv]
    spark_submit = _spark_submit_binary(python)
    command = [spark_submit]
    if config.spark.master:
        command += ["--master", config.spark.master]
    packages = default_packages() if config.spark.packages == "auto" else list(config.spark.packages)
    if packages:
        command += ["--packages", ",".join(packages)]
    if config.spark.ivy_dir:
        command += ["--conf", f"spark.jars.ivy={config.spark.ivy_dir}"]
    for key, flag in LAUNCH_CONFS.items():
        if key in config.spark.conf:
            command += [flag, config.spark.conf[key]]
    # The driver JVM is already running when the job builds its session: its options (UTC, spark.py) go here.
    java_options = spark_conf(config).get(DRIVER_JAVA_OPTIONS)
    if java_options:
        command += ["--driver-java-options", java_options]
    command += ["--py-files", str(build_lib_zip(project_root)), "--files", config.source, entry, *job_argv]
    return command


def _spark_submit_binary(python: str) -> str:
    beside_python = Path(python).parent / "spark-submit"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("spark-submit")
    if not found:
        raise SubmitError("spark-submit not found: run `make setup` locally, or run this on the EMR master node")
    return found


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else EXIT_USAGE
    name, rest = argv[0], argv[1:]
    try:
        job, args = parse_job_argv(name, rest)  # --help prints the job's options and exits 0 here
        config = job.config(args)
        command = command_for(job, config, rest)
    except EtlError as exc:
        print(f"spark-submit.sh: error: {exc.user_message()}", file=sys.stderr)
        if name not in JOBS:
            print(usage(), file=sys.stderr)
        return exc.exit_code
    if args.dry_run:  # no secret on it: --set refuses them; a URL's user:password@ is masked
        print(re.sub(r"(://[^/@\s:]+):[^@\s/]*@", r"\1:***@", " ".join(command)))
        return 0
    run_id = new_run_id()
    env = {**loopback_env(config.spark.master), **os.environ, RUN_ID_ENV: run_id}
    if command[0].endswith("spark-submit") and Path(command[0]).parent == Path(sys.executable).parent:
        # The venv's Spark: its Python workers must be the venv's interpreter too.
        env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    # A child, not an exec: a SIGTERM (a cancelled EMR step) or Ctrl-C reaches the Python driver through us.
    return run_job_process(command, env, spark_log_file(job.name, config, run_id, args.log_level))


if __name__ == "__main__":
    sys.exit(main())
