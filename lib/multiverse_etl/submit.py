"""What `spark-submit.sh` runs: the command line for a job in an environment, then exec.

Locally the extraction is plain Python (it needs no Spark); the Spark jobs go through the venv's
spark-submit with the Maven packages and the project's Ivy cache. On a cluster (EMR master node)
the jobs go through the platform's spark-submit with the library zipped for --py-files and the
environment's YAML shipped with --files.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Optional, Sequence

from .config import Config, ConfigError, load_config
from .console import run_job_process
from .logs import RUN_ID_ENV, new_run_id
from .set_flags import parse_set_flags
from .spark import default_packages, loopback_env

JOBS = {
    "extract": "land every API page as raw JSON in the lake (plain Python locally)",
    "transform": "load committed landing runs into bronze, silver and gold Delta tables",
    "pipeline": "extract, then transform",
    "maintain": "OPTIMIZE recent partitions and VACUUM old files",
    "smoke": "write and read back a tiny Delta table (checks the storage path)",
}
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Settings the JVM needs at launch: they must be on the spark-submit line, not in the builder.
LAUNCH_CONFS = {"spark.driver.memory": "--driver-memory", "spark.executor.memory": "--executor-memory"}


class SubmitError(ValueError):
    user_facing = True


def usage() -> str:
    jobs = "\n".join(f"  {name:<10} {text}" for name, text in JOBS.items())
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


def find_env(argv: Sequence[str]) -> Optional[str]:
    for i, arg in enumerate(argv):
        if arg == "--env" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--env="):
            return arg.split("=", 1)[1]
    return None


def find_overrides(argv: Sequence[str]) -> dict[str, str]:
    """--set KEY=VALUE and --lake-root from a job's arguments, so the plan sees the job's config."""
    sets = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--set"]
    sets += [a.split("=", 1)[1] for a in argv if a.startswith("--set=")]
    overrides = parse_set_flags(sets)
    for i, arg in enumerate(argv):
        if arg == "--lake-root" and i + 1 < len(argv):
            overrides["lake.root"] = argv[i + 1]
        elif arg.startswith("--lake-root="):
            overrides["lake.root"] = arg.split("=", 1)[1]
    return overrides


def is_local(config: Config) -> bool:
    return (config.spark.master or "").startswith("local")


def plan(job: str, argv: Sequence[str], python: str = sys.executable, project_root: Path = PROJECT_ROOT) -> list[str]:
    """The command that runs `job` with `argv` (which holds --env) in its environment."""
    return prepare(job, argv, python, project_root)[0]


def find_log_level(argv: Sequence[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--log-level" and i + 1 < len(argv):
            return argv[i + 1].upper()
        if arg.startswith("--log-level="):
            return arg.split("=", 1)[1].upper()
    return "INFO"


def spark_log_file(
    job: str, config: Config, run_id: str, argv: Sequence[str], project_root: Path = PROJECT_ROOT
) -> Optional[Path]:
    """Where Spark's and Ivy's own output goes for this run, or None: the console gets all of it.

    None on EMR/Glue (logging.spark_output: console: the platform collects everything), for the local
    extraction (no Spark), and with --log-level DEBUG (everything back on the console).
    """
    if config.logging.spark_output != "file" or find_log_level(argv) == "DEBUG":
        return None
    if job == "extract" and is_local(config):
        return None
    folder = Path(config.logging.dir).expanduser()
    return (folder if folder.is_absolute() else project_root / folder) / f"{job}-{run_id}.log"


def prepare(
    job: str, argv: Sequence[str], python: str = sys.executable, project_root: Path = PROJECT_ROOT
) -> tuple[list[str], Config]:
    """The command for `job` and the config it will run with."""
    if job not in JOBS:
        raise SubmitError(f"unknown job '{job}'; jobs: {', '.join(JOBS)}")
    env = find_env(argv)
    if not env:
        raise SubmitError(f"{job}: --env is required (local, local-s3, emr, glue or a YAML path)")
    config = load_config(env, find_overrides(argv))  # a bad config fails here, before anything starts
    entry = str(project_root / "jobs" / f"{job}.py")
    if job == "extract" and is_local(config):
        return [python, entry, *argv], config
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
    command += ["--py-files", str(build_lib_zip(project_root)), "--files", config.source, entry, *argv]
    return command, config


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
        return 0 if argv else 2
    job, rest = argv[0], argv[1:]
    dry_run = "--dry-run" in rest
    rest = [a for a in rest if a != "--dry-run"]
    if job in JOBS and any(a in ("-h", "--help") for a in rest):
        os.execv(sys.executable, [sys.executable, str(PROJECT_ROOT / "jobs" / f"{job}.py"), "--help"])
    try:
        command, config = prepare(job, rest)
    except (SubmitError, ConfigError) as exc:
        print(f"spark-submit.sh: error: {exc}", file=sys.stderr)
        if isinstance(exc, SubmitError) and exc.args and "unknown job" in str(exc):
            print(usage(), file=sys.stderr)
        return 2
    if dry_run:  # no secret on it: --set refuses them; a URL's user:password@ is masked
        print(re.sub(r"(://[^/@\s:]+):[^@\s/]*@", r"\1:***@", " ".join(command)))
        return 0
    run_id = new_run_id()
    env = {**loopback_env(config.spark.master), **os.environ, RUN_ID_ENV: run_id}
    if command[0].endswith("spark-submit") and Path(command[0]).parent == Path(sys.executable).parent:
        # The venv's Spark: its Python workers must be the venv's interpreter too.
        env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    # A child, not an exec: a SIGTERM (a cancelled EMR step) or Ctrl-C reaches the Python driver through us.
    return run_job_process(command, env, spark_log_file(job, config, run_id, rest))


if __name__ == "__main__":
    sys.exit(main())
