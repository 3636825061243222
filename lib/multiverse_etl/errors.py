"""The one root of every failure a user can cause or fix: a bad flag or config, refused credentials, a locked or
unwritable lake, a run that does not reconcile.

A job ends an `EtlError` with one line (`<job> failed: <message>`) and the class's `exit_code`; any other exception
is a bug and ends with its traceback. `--log-level DEBUG` shows the traceback for both (cli.run_job).
"""

from __future__ import annotations

from typing import ClassVar

EXIT_FAILED = 1  # the job ran and failed (a refused login, a locked lake, a bug)
EXIT_USAGE = 2  # the command line or the config is wrong: nothing was started


class EtlError(Exception):
    """A failure the user can act on; the message says what happened and what to check, never a secret."""

    exit_code: ClassVar[int] = EXIT_FAILED

    def user_message(self) -> str:
        """The message as the one line the user sees (a message of several lines is joined with '; ')."""
        return "; ".join(line.strip() for line in str(self).splitlines() if line.strip())


class ConfigError(EtlError):
    """A config file, variable or flag is wrong; the message names the key. Nothing has started (exit code 2)."""

    exit_code = EXIT_USAGE

    def user_message(self) -> str:
        return "bad configuration: " + super().user_message()
