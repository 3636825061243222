"""A console for people: Spark's and Ivy's own output to a log file, the project's lines to the console.

spark-submit.sh runs a Spark job as a child (`run_job_process`), in its own session: a SIGTERM or Ctrl-C sent
to spark-submit.sh is passed to the Python driver itself (its pid comes back through the file named by
$MV_DRIVER_PID_FILE), not to the JVM between them, so the driver stops cleanly and releases the lake lock
while the JVM is still there to carry its last lines. With a log file it reads the child's output line by
line. Every line goes to the job's log file; the console gets the project's log lines (text or JSON), Spark's WARN/ERROR
lines with their stack traces, and anything it does not recognise (a Python traceback, a JVM crash).
Only what is known to be noise is held back: log4j INFO/DEBUG records and Ivy's resolution report.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Mapping, Optional, Sequence

from .signals import DRIVER_PID_ENV, SIGNALS

OUR_LINE = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ [A-Z]+ |\{"ts": )')
SPARK_LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) ")
SPARK_SHOWN = {"WARN", "ERROR", "FATAL"}
IVY_LINE = re.compile(
    r"^(:: |Ivy Default Cache set to|The jars for the packages stored in|\S+#\S+ added as a dependency"
    r"|downloading |Using Spark's default log4j profile)"
)


class ConsoleFilter:
    """Decides, line by line, what reaches the console; a continuation line follows its record."""

    def __init__(self) -> None:
        self.showing = True
        self.hidden = 0

    def show(self, line: str) -> bool:
        spark = SPARK_LINE.match(line)
        if OUR_LINE.match(line):
            self.showing = True
        elif spark:
            self.showing = spark.group(1) in SPARK_SHOWN
        elif IVY_LINE.match(line):
            self.showing = False
        elif line[:1] not in (" ", "\t") and line.strip():
            self.showing = True  # not recognised as noise: shown (a traceback, a crash, a warning)
        if not self.showing:
            self.hidden += 1
        return self.showing


def _pump(stream: IO[bytes], log_file: IO[str], console: IO[str], lock: threading.Lock, hidden: list[int]) -> None:
    lines = ConsoleFilter()
    for raw in stream:
        line = raw.decode("utf-8", "replace")
        with lock:
            log_file.write(line)
            log_file.flush()
        if lines.show(line):
            console.write(line)
            console.flush()
    hidden.append(lines.hidden)


def run_job_process(
    command: Sequence[str],
    env: Mapping[str, str],
    log_path: Optional[Path] = None,
    out: IO[str] = sys.stdout,
    err: IO[str] = sys.stderr,
) -> int:
    """Run `command`, passing SIGTERM/SIGINT on to its Python driver; its exit code (128 + signal if killed).

    With `log_path`, its output is split between that file (all of it) and the console (`ConsoleFilter`),
    stdout and stderr each to its own stream (Ivy writes its first line to stdout); else it is inherited."""
    with tempfile.TemporaryDirectory(prefix="mv-driver-") as folder:
        pid_file = Path(folder) / "driver.pid"
        env = {**env, DRIVER_PID_ENV: str(pid_file)}
        if log_path is None:
            proc = subprocess.Popen(list(command), env=env, start_new_session=True)
            _forward_stops(proc, pid_file)
            code = proc.wait()
        else:
            code = _run_logged(command, env, log_path, pid_file, out, err)
    return 128 - code if code < 0 else code  # killed by a signal: the shell's convention


def _forward_stops(proc: subprocess.Popen, pid_file: Path) -> None:
    """SIGTERM/SIGINT to us go to the driver (once it said its pid), else to the child we started."""

    def forward(signum: int, _frame: object) -> None:
        try:
            target = int(pid_file.read_text())
        except (OSError, ValueError):
            target = proc.pid
        try:
            os.kill(target, signum)
        except ProcessLookupError:
            pass

    for signum in SIGNALS:
        signal.signal(signum, forward)


def _run_logged(command: Sequence[str], env: Mapping[str, str], log_path: Path, pid_file: Path, out, err) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"spark-submit.sh: Spark's own output goes to {log_path}", file=err, flush=True)
    lock, hidden = threading.Lock(), list[int]()
    with open(log_path, "w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(
            list(command), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        _forward_stops(proc, pid_file)
        pumps = [
            threading.Thread(target=_pump, args=(stream, log_file, console, lock, hidden), daemon=True)
            for stream, console in ((proc.stdout, out), (proc.stderr, err))
        ]
        for pump in pumps:
            pump.start()
        code = proc.wait()
        for pump in pumps:
            pump.join()
    shown = 128 - code if code < 0 else code
    if shown != 0 and any(hidden):
        print(
            f"spark-submit.sh: the job exited with code {shown}; Spark's own output is in {log_path}",
            file=err,
            flush=True,
        )
    return code
