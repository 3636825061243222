"""AWS Glue job parameters to the jobs' own command line.

Glue passes `--key value` pairs (plus its own, e.g. --JOB_NAME) and reads them with
`awsglue.utils.getResolvedOptions`, which knows no optional arguments: an optional key is asked for
only when it is present. Outside Glue the same parsing runs on a small stand-in, so it is tested.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from .set_flags import refuse_secret_on_command_line

REQUIRED = ("job", "env")
# Glue parameter (no dashes, underscores) -> the job's flag.
OPTIONAL = {
    "lake_root": "--lake-root",
    "api_url": "--api-url",
    "mode": "--mode",
    "resume": "--resume",
    "log_level": "--log-level",
    "days": "--days",
    "retention_hours": "--retention-hours",
}
SET_PREFIX = "set__"  # --set__api.page_size 500  ->  --set api.page_size=500


def _stand_in_resolver(argv: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    found = {}
    for name in names:
        flag = f"--{name}"
        if flag not in argv:
            raise SystemExit(f"glue job: missing required job parameter {flag}")
        found[name] = argv[argv.index(flag) + 1]
    return found


def _resolver() -> Callable[[Sequence[str], Sequence[str]], dict[str, str]]:
    try:
        from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
    except ImportError:
        return _stand_in_resolver
    return lambda argv, names: getResolvedOptions(list(argv), list(names))


def glue_argv(argv: Sequence[str], resolve: Optional[Callable] = None) -> tuple[str, list[str]]:
    """(job, the job's argv) from Glue's sys.argv."""
    resolve = resolve or _resolver()
    present = [name for name in OPTIONAL if f"--{name}" in argv]
    set_keys = [a[2:] for a in argv if a.startswith("--" + SET_PREFIX)]
    for key in set_keys:  # a job parameter is kept in every run's record: never a secret (ConfigError)
        refuse_secret_on_command_line(key[len(SET_PREFIX) :], where="Glue job parameter --set__")
    values = resolve(argv, [*REQUIRED, *present, *set_keys])
    job_argv = ["--env", values["env"]]
    for name in present:
        job_argv += [OPTIONAL[name], values[name]]
    for key in set_keys:
        job_argv += ["--set", f"{key[len(SET_PREFIX) :]}={values[key]}"]
    return values["job"], job_argv
