"""AWS Glue job parameters to the jobs' own command line.

Glue passes `--key value` pairs (plus its own, e.g. --JOB_NAME) and reads them with
`awsglue.utils.getResolvedOptions`, which knows no optional arguments: an optional key is asked for
only when it is present. Outside Glue the same parsing runs on a small stand-in, so it is tested.

Every flag of every job (entrypoints.JOBS) is a job parameter, named without dashes and with '_' for '-'
(--lake-root: --lake_root); a switch takes a value (--break_lock true).
"""

from __future__ import annotations

import argparse
from typing import Callable, Optional, Sequence

from .entrypoints import JOBS
from .set_flags import refuse_secret_on_command_line

REQUIRED = ("job", "env")
SET_PREFIX = "set__"  # --set__api.page_size 500  ->  --set api.page_size=500
TRUE = ("true", "yes", "1")  # a switch (--break_lock true) is on with one of these


def job_parameters() -> dict[str, argparse.Action]:
    """Glue parameter -> the job flag it sets, for every flag of every job but --env and --set (passed their own
    way)."""
    found: dict[str, argparse.Action] = {}
    for job in JOBS.values():
        # argparse has no public list of a parser's flags: `_actions` is how its own help is built.
        for action in job.parser()._actions:
            flag = next((o for o in action.option_strings if o.startswith("--")), None)
            if flag and flag not in ("--env", "--set", "--help"):
                found[flag[2:].replace("-", "_")] = action
    return found


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
        # Glue's own library exists only on Glue: no stubs, no package to install elsewhere (mypy's
        # ignore_missing_imports, in pyproject.toml, covers it).
        from awsglue.utils import getResolvedOptions
    except ImportError:
        return _stand_in_resolver
    return lambda argv, names: getResolvedOptions(list(argv), list(names))


def glue_argv(argv: Sequence[str], resolve: Optional[Callable] = None) -> tuple[str, list[str]]:
    """(job, the job's argv) from Glue's sys.argv."""
    resolve = resolve or _resolver()
    parameters = job_parameters()
    present = [name for name in parameters if f"--{name}" in argv]
    set_keys = [a[2:] for a in argv if a.startswith("--" + SET_PREFIX)]
    for key in set_keys:  # a job parameter is kept in every run's record: never a secret (ConfigError)
        refuse_secret_on_command_line(key[len(SET_PREFIX) :], where="Glue job parameter --set__")
    values = resolve(argv, [*REQUIRED, *present, *set_keys])
    job_argv = ["--env", values["env"]]
    for name in present:
        flag = parameters[name].option_strings[-1]
        if parameters[name].nargs == 0:  # a switch: Glue parameters always carry a value
            job_argv += [flag] if values[name].strip().lower() in TRUE else []
        else:
            job_argv += [flag, values[name]]
    for key in set_keys:
        job_argv += ["--set", f"{key[len(SET_PREFIX) :]}={values[key]}"]
    return values["job"], job_argv
