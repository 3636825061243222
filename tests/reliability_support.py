"""Shared helpers of the reliability suite (tests/test_reliability.py, test_crash_recovery.py, ...) and bench/chaos.py.

The core is `compare_lake`: the lake after a pipeline run against an independent Python model of
what the ground truth (`sample_api.dump.ground_truth`) must become:

* bronze of the run holds every served record exactly once (as a multiset of parsed records);
* silver holds, live, exactly the records that meet the contract, cleaned (trimmed, NFC, e-mail
  lower-cased and checked, dates parsed), one row per key;
* `silver/quarantine` holds exactly the records that break it, each with every reason;
* both gold tables are exactly the joins of those silver rows.

Projects of an apprenticeship whose id is unusable (null, missing, not an integer: a corrupt
source row) cannot be listed by anyone, so they are not expected anywhere.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from multiverse_etl.config import Config
from sample_api.server import run_in_thread
from sample_api.settings import ServerSettings

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TS = "yyyy-MM-dd'T'HH:mm:ss"
WHITE_SPACE = (
    "\u0009\u000a\u000b\u000c\u000d\u0020\u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
EMAIL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                   r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z")
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\Z")
STATUSES = ("pending", "submitted", "graded")
# The API contract, field order as served: (name, json type, role).
CONTRACT = {
    "apprenticeships": (("id", "integer", "id"), ("name", "string", ""), ("programme_id", "integer", ""),
                        ("modified_date", "string", "timestamp"), ("first_name", "string", ""),
                        ("last_name", "string", ""), ("email_address", "string", "")),
    "projects": (("id", "integer", "id"), ("title", "string", ""), ("description", "string", ""),
                 ("status", "string", "status")),
    "programmes": (("id", "integer", "id"), ("name", "string", ""), ("duration", "integer", "duration"),
                   ("description", "string", "")),
}
ENTITIES = ("apprenticeships", "projects", "programmes")
# The sample API's corruption kinds and the quarantine reason each must give (`{field}`: the field it hit).
REASON_OF_KIND = {"missing_field": "missing_field:{field}", "wrong_type": "wrong_type:{field}",
                  "bad_date": "unparseable_date:modified_date", "null_id": "null_value:id",
                  "unknown_status": "unknown_status:status"}


# ---------------------------------------------------------------- a Python model of the transform

def _text(v: Any) -> Optional[str]:
    return None if v is None else unicodedata.normalize("NFC", v.strip(WHITE_SPACE))


def _email(v: str) -> str:
    return unicodedata.normalize("NFC", v.strip(WHITE_SPACE).lower())


def _int64(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63


def _timestamp(v: str) -> Optional[str]:
    text = v.strip(WHITE_SPACE)
    if not TIMESTAMP.match(text):
        return None
    try:
        dt.datetime.strptime(("2000" if text[:4] == "0000" else text[:4]) + text[4:], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return text


def contract_reasons(entity: str, record: Any) -> list[str]:
    """Every reason `record` breaks the API contract, in the transform's order (an empty list: valid)."""
    if not isinstance(record, dict):
        return ["not_a_json_object"]
    reasons = []
    for name, json_type, role in CONTRACT[entity]:
        if name not in record:
            reasons.append(f"missing_field:{name}")
            continue
        value = record[name]
        if value is None:
            reasons.append(f"null_value:{name}")
            continue
        if json_type == "integer":
            wrong = not _int64(value)
        else:
            wrong = not isinstance(value, str)
        if wrong:
            reasons.append(f"wrong_type:{name}")
            continue
        if role == "timestamp" and _timestamp(value) is None:
            reasons.append(f"unparseable_date:{name}")
        if role == "status" and value.strip(WHITE_SPACE).lower() not in STATUSES:
            reasons.append(f"unknown_status:{name}")
        if role == "duration" and value < 0:
            reasons.append(f"negative_value:{name}")
    return reasons


def canonical(record: Any, parent: Optional[int] = None) -> str:
    """One record as comparable text (keys sorted; projects with their parent id)."""
    if isinstance(record, dict) and parent is not None:
        record = {**record, "apprenticeship_id": parent}
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def usable_parent(record: dict) -> Optional[int]:
    """The id the extractor can list projects for (an integer), else None."""
    value = record.get("id") if isinstance(record, dict) else None
    return value if _int64(value) and value >= 0 else None


@dataclass
class Reference:
    """What the lake must hold after loading the ground truth: per layer, per entity."""

    served: dict[str, Counter]  # entity -> Counter(canonical record) of every record the API serves (bronze)
    silver: dict[str, dict[tuple, tuple]]  # entity -> key -> business values
    quarantine: dict[str, Counter]  # entity -> Counter((canonical record, reasons))
    gold_apprenticeships: dict[tuple, tuple]
    gold_projects: dict[tuple, tuple]
    unreachable_projects: int = 0

    def expected_records(self, entity: str) -> int:
        return sum(self.served[entity].values())


def reference_lake(truth: dict[str, list[dict]]) -> Reference:
    """The model of one full load of `truth` into an empty lake (or into a lake whose live rows it replaces)."""
    parents = {usable_parent(a) for a in truth["apprenticeships"]} - {None}
    projects = [p for p in truth["projects"] if p["apprenticeship_id"] in parents]
    records = {"apprenticeships": [(a, None) for a in truth["apprenticeships"]],
               "projects": [({k: v for k, v in p.items() if k != "apprenticeship_id"}, p["apprenticeship_id"]) for p in projects],
               "programmes": [(p, None) for p in truth["programmes"]]}
    served = {e: Counter(canonical(r, parent) for r, parent in records[e]) for e in ENTITIES}
    silver: dict[str, dict[tuple, tuple]] = {e: {} for e in ENTITIES}
    quarantine: dict[str, Counter] = {e: Counter() for e in ENTITIES}
    for entity in ENTITIES:
        for record, parent in records[entity]:
            reasons = contract_reasons(entity, record)
            if reasons:
                quarantine[entity][(canonical(record, parent), tuple(reasons))] += 1
                continue
            if entity == "apprenticeships":
                email = _email(record["email_address"])
                value = (_text(record["name"]), record["programme_id"], _timestamp(record["modified_date"]),
                         _text(record["first_name"]), _text(record["last_name"]), email,
                         bool(EMAIL.match(email)) and len(email) <= 254)
                key: tuple = (record["id"],)
            elif entity == "projects":
                value = (_text(record["title"]), _text(record["description"]), record["status"].strip(WHITE_SPACE).lower())
                key = (parent, record["id"])
            else:
                value = (_text(record["name"]), record["duration"], _text(record["description"]))
                key = (record["id"],)
            silver[entity][key] = value
    gold_a, gold_p = _reference_gold(silver)
    return Reference(served, silver, quarantine, gold_a, gold_p, len(truth["projects"]) - len(projects))


def _month(ts: str) -> dt.date:
    return dt.date(int(ts[:4]), int(ts[5:7]), 1)


def _reference_gold(silver: dict[str, dict[tuple, tuple]]) -> tuple[dict, dict]:
    programmes = {k[0]: v for k, v in silver["programmes"].items()}
    counts: dict[int, Counter] = {}
    for (aid, _pid), (_t, _d, status) in silver["projects"].items():
        counts.setdefault(aid, Counter())[status] += 1
    gold_a = {}
    for (aid,), (name, programme_id, modified, first, last, email, valid) in silver["apprenticeships"].items():
        programme = programmes.get(programme_id)
        c = counts.get(aid, Counter())
        total = sum(c.values())
        gold_a[(aid,)] = (name, programme_id, modified, first, last, email, valid,
                          programme[0] if programme else None, programme[1] if programme else None, programme is not None,
                          total, c["pending"], c["submitted"], c["graded"], total > 0, _month(modified))
    gold_p = {}
    for (aid, pid), (title, description, status) in silver["projects"].items():
        parent = silver["apprenticeships"].get((aid,))
        if parent is None:
            gold_p[(pid, aid)] = (title, description, status, False, None, None, None, None, None, None, None, False,
                                  None, None, None, None)
            continue
        name, programme_id, modified, first, last, email, valid = parent
        programme = programmes.get(programme_id)
        gold_p[(pid, aid)] = (title, description, status, True, name, first, last, email, valid, modified, programme_id,
                              programme is not None, *(programme if programme else (None, None, None)), _month(modified))
    return gold_a, gold_p


# ---------------------------------------------------------------- reading the lake

def _lake(config: Config):
    from multiverse_etl.transform.tables import Lake

    return Lake(config.lake.root, config.s3.spark_scheme)


def read_lake(spark, config: Config, run_id: Optional[str] = None) -> dict[str, Any]:
    """What the comparison needs from the lake, collected (fine up to ~100k rows)."""
    from pyspark.sql import functions as F

    from multiverse_etl.transform.tables import read_table

    lake = _lake(config)
    state: dict[str, Any] = {"bronze": {}, "silver": {}, "silver_rows": {}, "quarantine": {}}
    for entity in ENTITIES:
        bronze = read_table(spark, lake, f"bronze/{entity}")
        if run_id:
            bronze = bronze.where(F.col("run_id") == run_id)
        state["bronze"][entity] = [(r.raw_record, r.parent_apprenticeship_id) for r in
                                   bronze.select("raw_record", "parent_apprenticeship_id").collect()]
    a = read_table(spark, lake, "silver/apprenticeships").where(~F.col("is_deleted"))
    state["silver"]["apprenticeships"] = [
        ((r.apprenticeship_id,), (r.name, r.programme_id, r.modified_date, r.first_name, r.last_name, r.email_address,
                                  r.email_is_valid), r.modified_month)
        for r in a.withColumn("modified_date", F.date_format("modified_date", TS)).collect()]
    p = read_table(spark, lake, "silver/projects").where(~F.col("is_deleted"))
    state["silver"]["projects"] = [((r.apprenticeship_id, r.project_id), (r.title, r.description, r.status), None)
                                   for r in p.collect()]
    g = read_table(spark, lake, "silver/programmes").where(~F.col("is_deleted"))
    state["silver"]["programmes"] = [((r.programme_id,), (r.name, r.duration, r.description), None) for r in g.collect()]
    quarantine = read_table(spark, lake, "silver/quarantine")
    if run_id:
        quarantine = quarantine.where(F.col("run_id") == run_id)
    for entity in ENTITIES:
        state["quarantine"][entity] = [(r.raw_record, r.parent_apprenticeship_id, tuple(r.reasons)) for r in
                                       quarantine.where(F.col("entity") == entity).collect()]
    gold_a = read_table(spark, lake, "gold/apprenticeships")
    state["gold_apprenticeships"] = [
        ((r.apprenticeship_id,), (r.name, r.programme_id, r.modified_date, r.first_name, r.last_name, r.email_address,
                                  r.email_is_valid, r.programme_name, r.programme_duration, r.programme_known,
                                  r.projects_total, r.projects_pending, r.projects_submitted, r.projects_graded,
                                  r.has_projects, r.modified_month))
        for r in gold_a.withColumn("modified_date", F.date_format("modified_date", TS)).collect()]
    gold_p = read_table(spark, lake, "gold/apprenticeship_projects")
    state["gold_projects"] = [
        ((r.project_id, r.apprenticeship_id), (r.title, r.description, r.status, r.apprenticeship_known,
                                                r.apprenticeship_name, r.first_name, r.last_name, r.email_address,
                                                r.email_is_valid, r.modified_date, r.programme_id, r.programme_known,
                                                r.programme_name, r.programme_duration, r.programme_description,
                                                r.modified_month))
        for r in gold_p.withColumn("modified_date", F.date_format("modified_date", TS)).collect()]
    return state


# ---------------------------------------------------------------- comparing

@dataclass
class Comparison:
    """The lake against the reference: counts for the chaos table and every problem found."""

    expected: int = 0  # records the API serves (all entities)
    in_lake: int = 0  # silver live rows + quarantine rows
    missing: int = 0
    duplicated: int = 0
    wrong: int = 0  # rows present with other values, or not in the source at all
    quarantined: int = 0
    by_entity: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self, limit: int = 12) -> str:
        return "\n".join(self.problems[:limit]) + (f"\n... {len(self.problems) - limit} more" if len(self.problems) > limit else "")


def _diff_map(name: str, want: dict, got_rows: list[tuple], out: Comparison, check_month: bool = False) -> None:
    got: dict = {}
    duplicates = 0
    for row in got_rows:
        key, value = row[0], row[1]
        if key in got:
            duplicates += 1
        got[key] = value
        if check_month and len(row) > 2 and row[2] is not None and value[2] is not None and row[2] != _month(value[2]):
            out.wrong += 1
            out.problems.append(f"{name} {key}: modified_month {row[2]} for modified_date {value[2]}")
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    different = [k for k in want if k in got and got[k] != want[k]]
    out.missing += len(missing)
    out.duplicated += duplicates
    out.wrong += len(extra) + len(different)
    for what, keys in (("missing", missing), ("not in the source", extra), ("different", different)):
        if keys:
            sample = keys[0]
            detail = f" (lake {got.get(sample)!r} vs expected {want.get(sample)!r})" if what == "different" else ""
            out.problems.append(f"{name}: {len(keys)} row(s) {what}, e.g. {sample}{detail}")
    if duplicates:
        out.problems.append(f"{name}: {duplicates} duplicate row(s) for one key")


def _diff_multiset(name: str, want: Counter, got: Counter, out: Comparison) -> tuple[int, int]:
    missing, extra = want - got, got - want
    m, e = sum(missing.values()), sum(extra.values())
    out.missing += m
    out.duplicated += e
    if m:
        out.problems.append(f"{name}: {m} record(s) missing, e.g. {next(iter(missing))[:200]}")
    if e:
        out.problems.append(f"{name}: {e} record(s) duplicated or extra, e.g. {next(iter(extra))[:200]}")
    return m, e


def compare_lake(spark, config: Config, reference: Reference, run_id: Optional[str] = None,
                 check_bronze: bool = True) -> Comparison:
    """The lake's bronze (of `run_id`), silver, quarantine (of `run_id`) and gold against `reference`."""
    state = read_lake(spark, config, run_id)
    out = Comparison()
    for entity in ENTITIES:
        stats = out.by_entity.setdefault(entity, {})
        stats["expected"] = reference.expected_records(entity)
        out.expected += stats["expected"]
        if check_bronze:
            bronze = Counter(canonical(json.loads(raw), parent if entity == "projects" else None)
                             for raw, parent in state["bronze"][entity])
            stats["bronze_missing"], stats["bronze_duplicated"] = _diff_multiset(
                f"bronze/{entity}", reference.served[entity], bronze, out)
        silver_rows = state["silver"][entity]
        _diff_map(f"silver/{entity}", reference.silver[entity], silver_rows, out, check_month=entity == "apprenticeships")
        quarantined = Counter((canonical(json.loads(raw), parent if entity == "projects" else None), reasons)
                              for raw, parent, reasons in state["quarantine"][entity])
        _diff_multiset(f"silver/quarantine {entity}", reference.quarantine[entity], quarantined, out)
        stats["silver_live"] = len(silver_rows)
        stats["quarantined"] = sum(quarantined.values())
        out.quarantined += stats["quarantined"]
        out.in_lake += stats["silver_live"] + stats["quarantined"]
    _diff_map("gold/apprenticeships", reference.gold_apprenticeships, state["gold_apprenticeships"], out)
    _diff_map("gold/apprenticeship_projects", reference.gold_projects, state["gold_projects"], out)
    return out


def assert_lake_matches(spark, config: Config, reference: Reference, run_id: Optional[str] = None,
                        check_bronze: bool = True) -> Comparison:
    comparison = compare_lake(spark, config, reference, run_id, check_bronze)
    assert comparison.ok, "the lake is not the ground truth:\n" + comparison.describe()
    return comparison


# ---------------------------------------------------------------- the sample API, restarted on a signal

_DROP_SEEN: contextvars.ContextVar = contextvars.ContextVar("drop_seen", default=None)


def _watch_drops() -> None:
    """Wrap sample_api.faults.drop_connection once, so a request's task can tell a drop from a 500."""
    import sample_api.faults as faults_module

    real = faults_module.drop_connection
    if getattr(real, "_watched", False):
        return

    def watching_drop(receive):
        dropped = real(receive)
        seen = _DROP_SEEN.get()
        if seen is not None:
            seen["drop"] = dropped
        return dropped

    watching_drop._watched = True  # type: ignore[attr-defined]
    faults_module.drop_connection = watching_drop


class RestartableApi:
    """An in-process sample API that counts the faults it injects and can be restarted on the same port.

    A restart makes a new pagination key (every token handed out before answers 500) and, with
    --token-ttl, a new access-token store (every access token is refused).
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.restarts = 0
        self.issued: list[str] = []  # every access token handed out (for the secret scan)
        self.faults: Counter = Counter()  # "429", "drop", "500", "401" (expired token), "restart"
        self.requests = 0  # data requests that reached authentication (faulted ones do not)
        self.server = run_in_thread(settings)
        self.url = self.server.url
        self._instrument()

    def _instrument(self) -> None:
        _watch_drops()
        app, counts = self.server.app, self.faults
        access = app.service.access
        issue, consume = access.issue, access.consume

        def recording_issue() -> str:
            token = issue()
            self.issued.append(token)
            return token

        def counting_consume(token: str) -> bool:
            ok = consume(token)
            self.requests += 1
            if not ok:
                counts["401"] += 1
            return ok

        access.issue, access.consume = recording_issue, counting_consume
        injector = app.faults
        intercept, too_many = injector.intercept, injector._too_many

        async def counting_too_many(send, retry_after):
            counts["429"] += 1
            await too_many(send, retry_after)

        async def counting_intercept(scope, receive, send) -> bool:
            before = counts["429"]
            seen = {"drop": False}
            _DROP_SEEN.set(seen)  # each request is its own task: its own context
            answered = await intercept(scope, receive, send)
            if answered and counts["429"] == before:
                counts["drop" if seen["drop"] else "500"] += 1
            return answered

        injector._too_many = counting_too_many
        injector.intercept = counting_intercept

    def restart(self, pause_s: float = 0.2) -> None:
        dataset, port = self.server.dataset, self.server.port
        self.server.stop()
        time.sleep(pause_s)  # connections are refused meanwhile
        self.server = run_in_thread(self.settings, port=port, dataset=dataset)
        self._instrument()
        self.restarts += 1
        self.faults["restart"] += 1

    def restart_when(self, condition: Callable[[], bool], timeout_s: float = 120.0) -> threading.Thread:
        """Restart once `condition()` holds (polled); the thread ends after it (or at the timeout)."""

        def watch() -> None:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if condition():
                    self.restart()
                    return
                time.sleep(0.002)

        thread = threading.Thread(target=watch, name="api-restarter", daemon=True)
        thread.start()
        return thread

    def describe_faults(self) -> str:
        order = ("500", "drop", "429", "401", "restart")
        return " ".join(f"{name}x{self.faults[name]}" for name in order if self.faults[name])

    def stop(self) -> None:
        self.server.stop()


def count_objects(storage, prefix: str) -> int:
    return sum(1 for _ in storage.list(prefix))


# ---------------------------------------------------------------- jobs as subprocesses

def job_command(job: str, lake: str, *extra: str, env_name: str = "local") -> list[str]:
    """`jobs/<job>.py` with the test-sized Spark settings (2 shuffle partitions, small Delta snapshots)."""
    spark_sets = ["--set", "transform.shuffle_partitions=2",
                  "--set", "spark.conf.spark.driver.memory=1g",
                  "--set", "spark.conf.spark.default.parallelism=2",
                  "--set", "spark.conf.spark.sql.adaptive.enabled=false",
                  "--set", "spark.conf.spark.ui.enabled=false",
                  "--set", "spark.conf.spark.databricks.delta.snapshotPartitions=2"]
    if job == "extract":
        spark_sets = []
    return [PYTHON, str(ROOT / "jobs" / f"{job}.py"), "--env", env_name, "--lake-root", lake, *spark_sets, *extra]


def job_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MV_")}
    env.update(extra)
    return env


def kill_when(proc: subprocess.Popen, condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.002,
              what: str = "", log: Optional[Path] = None) -> float:
    """SIGKILL `proc`'s process group the moment `condition()` holds; the seconds it took. Fails if it ends first.

    Start `proc` with `start_new_session=True` (its own process group).

    `what` names the point in failure messages, followed by the end of `log` (the job's output).
    """
    def tail() -> str:
        return (":\n" + log.read_text()[-4000:]) if log is not None and log.exists() else ""

    def kill() -> None:
        # The whole process group: the Python driver and its Spark JVM die at the same instant, as in a
        # machine or container loss (killing Python alone lets the JVM run its shutdown hooks first).
        try:
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    started = time.monotonic()
    while True:
        if condition():
            kill()
            return time.monotonic() - started
        if proc.poll() is not None:
            raise AssertionError(f"the job ended (exit {proc.returncode}) before it could be killed {what}{tail()}")
        if time.monotonic() - started > timeout_s:
            kill()
            raise AssertionError(f"timed out after {timeout_s}s waiting to kill the job {what}{tail()}")
        time.sleep(poll_s)


def delta_versions(table_dir: Path) -> list[int]:
    """Committed versions of a local Delta table."""
    log = table_dir / "_delta_log"
    if not log.is_dir():
        return []
    return sorted(int(p.name[:20]) for p in log.iterdir() if p.name.endswith(".json") and p.name[:20].isdigit())


def data_files(table_dir: Path) -> set[str]:
    """Every parquet file under a local Delta table (committed or not)."""
    found = set()
    for dirpath, _dirs, files in os.walk(table_dir):
        if "_delta_log" in dirpath:
            continue
        found.update(os.path.join(dirpath, f) for f in files if f.endswith(".parquet"))
    return found


def committed_files(table_dir: Path) -> set[str]:
    """Data files the table's log adds and does not remove (local tables without checkpoints)."""
    live: set[str] = set()
    for version in delta_versions(table_dir):
        for line in (table_dir / "_delta_log" / f"{version:020d}.json").read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                live.add(os.path.join(str(table_dir), action["add"]["path"]))
            elif "remove" in action:
                live.discard(os.path.join(str(table_dir), action["remove"]["path"]))
    return {os.path.normpath(p.replace("%3D", "=").replace("%3A", ":")) for p in live}


def with_sections(config: Config, **sections: dict) -> Config:
    for name, values in sections.items():
        config = dataclasses.replace(config, **{name: dataclasses.replace(getattr(config, name), **values)})
    return config


def walk_files(root: Path) -> Iterable[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath, name)


# ---------------------------------------------------------------- the shared faulted pipeline run

class LogCapture:
    """Every log record (formatted, exceptions included) while installed on the root logger, DEBUG for our code."""

    def __init__(self) -> None:
        import logging

        self.lines: list[str] = []
        capture = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                capture.lines.append(self.format(record))

        self.handler = _Handler(logging.DEBUG)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def __enter__(self) -> "LogCapture":
        import logging

        self._levels = {name: logging.getLogger(name).level for name in ("multiverse_etl", "sample_api")}
        for name in self._levels:
            logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger().addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        import logging

        logging.getLogger().removeHandler(self.handler)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class FaultedRun:
    """One pipeline run (extract then transform) against the sample API with every fault at once."""

    config: Config
    scale: int
    seed: int
    corrupt_rate: float
    api: RestartableApi
    extract: Any  # ExtractResult
    transform: Any  # TransformResult
    logs: str
    reference: Reference
    comparison: Comparison
    s3_secret: str
    wall_s: float
    extract_s: float = 0.0
    transform_s: float = 0.0


# Every fault mode of the sample API at once (the README's --fault-rate 0.1 --rate-limit --token-ttl
# --drop-rate 0.02 --latency-ms --max-page-size), plus corrupt records. 60 requests/s: well below what the
# client reaches here, so 429s happen on every run (at 150 some runs saw none).
FAULT_MATRIX = dict(fault_rate=0.1, rate_limit=60.0, token_ttl=40, drop_rate=0.02, latency_ms=3, max_page_size=25,
                    fault_seed=5)
_SHARED: dict[str, FaultedRun] = {}


def faulted_pipeline_run(spark, s3_config: Config, *, scale: int = 300, seed: int = 41, corrupt_rate: float = 0.04,
                         restart_after_tokens: int = 3) -> FaultedRun:
    """The shared run of the reliability modules (computed once per test process): a lake on the local S3.

    The API is restarted once mid-extraction (after `restart_after_tokens` logins: the apprenticeships
    walk and the fan-out are under way, so every pagination token dies).
    """
    key = f"{scale}-{seed}-{corrupt_rate}"
    if key in _SHARED:
        return _SHARED[key]
    import secrets as _secrets
    import uuid

    from multiverse_etl.extract import run_extract
    from multiverse_etl.transform import run_transform
    from sample_api.dump import ground_truth

    from extract_support import extract_config

    started = time.monotonic()
    s3_secret = "s3-secret-" + _secrets.token_hex(8)  # moto takes any key: a value that must never show anywhere
    s3 = {**dataclasses.asdict(s3_config.s3), "access_key_id": "AKIARELIABILITY", "secret_access_key": s3_secret}
    root = f"{s3_config.lake.root}/reliability-{uuid.uuid4().hex[:8]}"
    api = RestartableApi(ServerSettings(scale=scale, seed=seed, corrupt_rate=corrupt_rate, **FAULT_MATRIX))
    config = extract_config(root, api.url, env="local-s3", s3=s3,
                            api={"page_size": 50, "concurrency": 8}, extract={"part_max_bytes": 2048})
    config = with_sections(config, transform={"shuffle_partitions": 2})
    try:
        with LogCapture() as logs:
            restarter = api.restart_when(lambda: len(api.issued) >= restart_after_tokens)
            extracted = run_extract(config)
            restarter.join(timeout=5)
            extract_s = time.monotonic() - started
            transformed = run_transform(spark, config)
            transform_s = time.monotonic() - started - extract_s
    finally:
        api.stop()
    reference = reference_lake(ground_truth(scale, seed, 0, corrupt_rate))
    comparison = compare_lake(spark, config, reference, extracted.run_id)
    run = FaultedRun(config, scale, seed, corrupt_rate, api, extracted, transformed, logs.text, reference, comparison,
                     s3_secret, time.monotonic() - started, extract_s, transform_s)
    _SHARED[key] = run
    return run


# ---------------------------------------------------------------- a deliberate pause, in test code only

# Runs a job script with a pause injected at one precise point, announced by creating the file
# $TEST_PAUSE_MARKER, so the test can SIGKILL the job exactly there. Production code has no hook:
# this wraps library functions from the outside before the job starts.
#   TEST_PAUSE_AT=s3-complete   the Nth projects part upload to S3: parts sent, CompleteMultipartUpload not
#                               (small parts are forced through the multipart path)
#   TEST_PAUSE_AT=local-rename  the Nth projects part in a folder: temp file written, not yet renamed
PAUSE_BOOTSTRAP = r"""
import os, runpy, sys, threading, time
at, nth, marker = os.environ["TEST_PAUSE_AT"], int(os.environ.get("TEST_PAUSE_NTH", "1")), os.environ["TEST_PAUSE_MARKER"]
seen = {"n": 0}
lock = threading.Lock()

def pause_here(what):
    with lock:
        seen["n"] += 1
        hit = seen["n"] == nth
    if hit:
        with open(marker + ".tmp", "w") as out:  # renamed whole: the test never reads a marker half written
            out.write(what)
        os.rename(marker + ".tmp", marker)
        while True:
            time.sleep(60)

if at == "s3-complete":
    import multiverse_etl.storage as storage
    storage.MULTIPART_THRESHOLD = 1024
    make_client = storage.s3_client

    def paused_client(s3):
        client = make_client(s3)
        def before_complete(params, **kwargs):
            if "/raw/projects/" in "/" + params.get("Key", ""):
                pause_here(params["Key"])
        client.meta.events.register("before-parameter-build.s3.CompleteMultipartUpload", before_complete)
        return client

    storage.s3_client = paused_client
elif at == "local-rename":
    real_replace = os.replace

    def paused_replace(src, dst, *args, **kwargs):
        if "/raw/projects/" in str(dst):
            pause_here(str(dst))
        return real_replace(src, dst, *args, **kwargs)

    os.replace = paused_replace
else:
    raise SystemExit(f"unknown TEST_PAUSE_AT {at!r}")
script, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def paused(command: list[str]) -> list[str]:
    """`command` (python jobs/x.py ...) run through PAUSE_BOOTSTRAP."""
    return [command[0], "-c", PAUSE_BOOTSTRAP, *command[1:]]


# ---------------------------------------------------------------- the crash chain (transform crash points + concurrency)

@dataclass
class Step:
    """What one job of the chain did: exit, output, timing, and the lake right after it ended."""

    name: str
    returncode: Optional[int] = None
    output: str = ""
    seconds: float = 0.0
    killed_after_s: Optional[float] = None
    lake: dict[str, Any] = field(default_factory=dict)


@dataclass
class CrashChain:
    config: Config
    lake_dir: Path
    scale: int
    seed: int
    steps: dict[str, Step]
    reference: Reference
    comparison: Comparison
    run_ids: list[str]
    audit: list[tuple]
    bronze_rows: dict[str, int]


TABLES = ("bronze/programmes", "bronze/apprenticeships", "bronze/projects", "silver/programmes", "silver/apprenticeships",
          "silver/projects", "silver/quarantine", "gold/apprenticeships", "gold/apprenticeship_projects", "_audit/runs")


def lake_snapshot(lake_dir: Path) -> dict[str, Any]:
    """Versions and uncommitted data files of every table, the lock, manifests and extract run plans."""
    snapshot: dict[str, Any] = {"versions": {}, "uncommitted": {}}
    for table in TABLES:
        directory = lake_dir / table
        snapshot["versions"][table] = delta_versions(directory)
        snapshot["uncommitted"][table] = sorted(data_files(directory) - committed_files(directory))
    snapshot["lock"] = (lake_dir / "_locks" / "writer.lock").read_text() if (lake_dir / "_locks" / "writer.lock").exists() else None
    snapshot["manifests"] = sorted(p.name for p in (lake_dir / "raw" / "_manifests").glob("*.json"))
    snapshot["run_plans"] = sorted(p.name for p in (lake_dir / "_state" / "extract_runs").glob("*.json"))
    return snapshot


def latest_version(table_dir: Path) -> int:
    versions = delta_versions(table_dir)
    return versions[-1] if versions else -1


def write_in_flight(table_dir: Path) -> bool:
    """Data files that no commit of the table names yet: a write (here the MERGE) is under way."""
    files = data_files(table_dir)
    return bool(files) and bool(files - committed_files(table_dir))


_CHAINS: dict[str, CrashChain] = {}


def crash_chain(spark, base_dir: Path, *, scale: int = 200, seed: int = 71) -> CrashChain:
    """Two pipelines at once, crashes of the transform at two points, the documented recoveries (cached).

    1. two `jobs/pipeline.py` start together on an empty lake: one takes the lake lock, the other
       must refuse; the winner is SIGKILLed right after its last bronze commit (between bronze and silver);
    2. `jobs/transform.py` re-run (it takes over the dead holder's lock; were it refused, `--break-lock`),
       SIGKILLed while its silver MERGE of projects has written data files but not committed them;
    3. the transform run again (in this process, after breaking the lock): silver and gold must equal
       the ground truth, bronze must hold the run once, the audit one 'loaded' row.
    """
    key = f"{scale}-{seed}"
    if key in _CHAINS:
        return _CHAINS[key]
    from extract_support import start_api
    from multiverse_etl.lock import LakeLocked, break_lock
    from multiverse_etl.storage import open_storage
    from multiverse_etl.transform import run_transform
    from sample_api.dump import ground_truth

    from conftest import make_config

    lake_dir = base_dir / "lake"
    lake = str(lake_dir)
    steps: dict[str, Step] = {}
    server = start_api(scale=scale, seed=seed)
    try:
        api = ["--api-url", server.url, "--set", "api.page_size=50", "--set", "api.concurrency=8"]
        pipeline = job_command("pipeline", lake, *api)
        logs = {name: base_dir / f"{name}.log" for name in ("first", "second", "rerun")}
        started = time.monotonic()
        with open(logs["first"], "w") as a, open(logs["second"], "w") as b:
            first = subprocess.Popen(pipeline, stdout=a, stderr=subprocess.STDOUT, env=job_env(), start_new_session=True)
            second = subprocess.Popen(pipeline, stdout=b, stderr=subprocess.STDOUT, env=job_env(), start_new_session=True)
        procs = {"first": first, "second": second}
        loser_name = None
        while loser_name is None and time.monotonic() - started < 120:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    loser_name = name
                    break
            time.sleep(0.01)
        assert loser_name is not None, "neither pipeline ended: the second was not refused"
        winner_name = "second" if loser_name == "first" else "first"
        loser, winner = procs[loser_name], procs[winner_name]
        steps["refused pipeline"] = Step("refused pipeline", loser.returncode, logs[loser_name].read_text(),
                                         time.monotonic() - started, lake=lake_snapshot(lake_dir))
        # every entity's bronze commit of the run is there (they are written side by side), no silver commit yet
        bronze_done = lambda: all(latest_version(lake_dir / f"bronze/{e}") >= 1 for e in ENTITIES)  # noqa: E731
        killed_after = kill_when(winner, bronze_done, timeout_s=400, poll_s=0.01, what="between bronze and silver",
                                 log=logs[winner_name])
        steps["pipeline killed between bronze and silver"] = Step(
            "pipeline killed between bronze and silver", winner.returncode, logs[winner_name].read_text(),
            time.monotonic() - started, killed_after, lake_snapshot(lake_dir))

        # The documented recovery: run the transform again (the landing run is committed, not loaded).
        # On the same host the dead holder's lock is taken over at once; elsewhere it is refused until
        # --break-lock (or the lock's TTL): both paths are followed here.
        transform = job_command("transform", lake)
        in_merge = lambda: write_in_flight(lake_dir / "silver/projects")  # noqa: E731
        started = time.monotonic()
        with open(logs["rerun"], "w") as out:
            rerun = subprocess.Popen(transform, stdout=out, stderr=subprocess.STDOUT, env=job_env(), start_new_session=True)
        try:
            killed_after = kill_when(rerun, in_merge, timeout_s=400, poll_s=0.005, what="during the MERGE", log=logs["rerun"])
        except AssertionError:
            output = logs["rerun"].read_text()
            if rerun.returncode in (0, None) or "locked by" not in output:
                raise
            steps["re-run refused by the dead holder's lock"] = Step(
                "re-run refused by the dead holder's lock", rerun.returncode, output, time.monotonic() - started,
                lake=lake_snapshot(lake_dir))
            started = time.monotonic()
            logs["rerun"] = base_dir / "rerun-break-lock.log"
            with open(logs["rerun"], "w") as out:
                rerun = subprocess.Popen(transform + ["--break-lock"], stdout=out, stderr=subprocess.STDOUT, env=job_env(),
                                         start_new_session=True)
            killed_after = kill_when(rerun, in_merge, timeout_s=400, poll_s=0.005, what="during the MERGE", log=logs["rerun"])
        steps["re-run killed during the silver MERGE"] = Step(
            "re-run killed during the silver MERGE", rerun.returncode, logs["rerun"].read_text(),
            time.monotonic() - started, killed_after, lake_snapshot(lake_dir))
    finally:
        for proc in (locals().get("first"), locals().get("second"), locals().get("rerun")):
            if proc is not None and proc.poll() is None:
                os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
                proc.wait(timeout=30)
        server.stop()

    config = with_sections(make_config(lake), transform={"shuffle_partitions": 2})
    storage = open_storage(lake)
    started = time.monotonic()
    with LogCapture() as captured:
        try:
            run_transform(spark, config)
        except LakeLocked as exc:  # a lock this host cannot prove dead: the operator's --break-lock
            captured.lines.append(f"refused: {exc}")
            break_lock(storage)
            run_transform(spark, config)
    steps["final re-run"] = Step("final re-run", 0, captured.text, time.monotonic() - started,
                                 lake=lake_snapshot(lake_dir))
    from pyspark.sql import functions as F

    from multiverse_etl.transform.tables import read_table

    lake_ = _lake(config)
    run_ids = [m.removesuffix(".json") for m in steps["final re-run"].lake["manifests"]]
    reference = reference_lake(ground_truth(scale, seed, 0))
    comparison = compare_lake(spark, config, reference, run_ids[0] if len(run_ids) == 1 else None)
    audit = [(r.run_id, r.status) for r in read_table(spark, lake_, "_audit/runs").collect()]
    bronze_rows = {e: read_table(spark, lake_, f"bronze/{e}").where(F.col("run_id").isin(run_ids)).count() for e in ENTITIES}
    chain = CrashChain(config, lake_dir, scale, seed, steps, reference, comparison, run_ids, audit, bronze_rows)
    _CHAINS[key] = chain
    return chain
