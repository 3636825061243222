"""Where a transform's Spark jobs go: a first load, an incremental run and a run that changes nothing at one scale,
each run's jobs grouped by the line of code that started them (Spark UI's REST API), with their summed wall time.

Prints tables; nothing is asserted. Usage: .venv/bin/python bench/spark_jobs_by_step.py --scale 2000
(`PYTHONPATH=<other checkout>/lib` in front: that checkout's library instead, for a before/after comparison).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from multiverse_etl.config import load_config
from multiverse_etl.logs import setup_logging
from transform import synthesise_landing  # bench/transform.py: this script's folder is first on sys.path


def _jobs(spark) -> list[dict]:
    url = spark.sparkContext.uiWebUrl
    app = spark.sparkContext.applicationId
    with urllib.request.urlopen(f"{url}/api/v1/applications/{app}/jobs", timeout=30) as answer:
        return json.load(answer)


def _seconds(job: dict) -> float:
    def parse(text: str) -> dt.datetime:
        return dt.datetime.strptime(text.replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")

    if not job.get("completionTime"):
        return 0.0
    return (parse(job["completionTime"]) - parse(job["submissionTime"])).total_seconds()


def _site(job: dict) -> str:
    name = job.get("name", "?")
    group = job.get("jobGroup") or "-"
    description = (job.get("description") or "").split("\n")[0][:70]
    if " at " in name:
        action, where = name.split(" at ", 1)
        name = f"{action} at {where.rsplit('/', 1)[-1]}"
    return f"{group:<16} {name} | {description}" if description else f"{group:<16} {name}"


STEPS = (
    "ensure_tables",
    "loaded_runs",
    "table_versions",
    "prepare_entity",
    "listed_parents",
    "write_quarantine",
    "merge_silver",
    "plan_silver",
    "apply_silver",
    "parents_deleted_after",
    "refresh_gold",
    "write_audit",
)


STEP_WALL: dict[str, list[float]] = collections.defaultdict(list)  # each call's wall time, per step


def _label_steps(spark) -> None:
    """Each step's jobs in a job group named for it (thread-local: the steps run side by side); its wall time."""
    import functools

    from multiverse_etl.transform import run as run_module

    for name in STEPS:
        inner = getattr(run_module, name)

        def wrapped(*args, __inner=inner, __name=name, **kwargs):
            before = spark.sparkContext.getLocalProperty("spark.jobGroup.id")
            spark.sparkContext.setLocalProperty("spark.jobGroup.id", __name)
            start = time.monotonic()
            try:
                return __inner(*args, **kwargs)
            finally:
                STEP_WALL[__name].append(time.monotonic() - start)
                spark.sparkContext.setLocalProperty("spark.jobGroup.id", before)

        setattr(run_module, name, functools.wraps(inner)(wrapped))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=2000)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument(
        "--configured-partitions",
        action="store_true",
        help="small loads keep the configured shuffle partitions (the setting before 2026-12-06)",
    )
    parser.add_argument("--conf", action="append", default=[], help="extra Spark setting key=value (repeatable)")
    parser.add_argument("--sql", default="", help="print the physical plan of the first SQL execution so described")
    parser.add_argument("--stacks", default="", help="print the call stacks of the first jobs whose site has this")
    parser.add_argument("--detail", action="store_true", help="every job: its time, tasks and stages")
    args = parser.parse_args()
    setup_logging("WARNING")
    from multiverse_etl.spark import build_spark
    from multiverse_etl.transform import run_transform

    base = load_config("local", environ={})
    config = dataclasses.replace(
        base,
        transform=dataclasses.replace(base.transform, shuffle_partitions=args.shuffle_partitions),
        spark=dataclasses.replace(
            base.spark,
            conf={
                **base.spark.conf,
                "spark.ui.enabled": "true",
                "spark.ui.retainedJobs": "100000",
                "spark.ui.port": "0",
                **dict(item.split("=", 1) for item in args.conf),
            },
        ),
    )
    spark = build_spark(config, "jobs-by-step")
    _label_steps(spark)
    if args.configured_partitions:
        from multiverse_etl.transform import run as run_module

        settings = run_module.small_landing_settings
        run_module.small_landing_settings = lambda records, partitions, **kw: {  # type: ignore[assignment]
            k: v for k, v in settings(records, partitions, **kw).items() if k != run_module.SHUFFLE_PARTITIONS
        }
    work = Path(tempfile.mkdtemp(prefix="jobs-by-step-"))
    try:
        # The session's first runs (a first load, then an incremental run) on a lake of their own: what a fresh
        # spark-submit pays (JVM warm-up, every generated class compiled); the runs measured below then reuse them.
        warm = dataclasses.replace(config, lake=dataclasses.replace(config.lake, root=str(work / "warm")))
        for label, generation in (("first load", 0), ("incremental", 1)):
            synthesise_landing(str(work / "warm"), args.scale, generation=generation)
            start = time.monotonic()
            result = run_transform(spark, warm)
            print(f"cold session, {label}: {time.monotonic() - start:.1f} s, {result.spark_jobs} Spark jobs")
        lake = dataclasses.replace(config, lake=dataclasses.replace(config.lake, root=str(work / "lake")))
        for label, generation in (("first load", 0), ("incremental", 1), ("changes nothing", 1)):
            synthesise_landing(str(work / "lake"), args.scale, generation=generation)
            seen = {j["jobId"] for j in _jobs(spark)}
            STEP_WALL.clear()
            start = time.monotonic()
            result = run_transform(spark, lake)
            seconds = time.monotonic() - start
            time.sleep(1)
            jobs = [j for j in _jobs(spark) if j["jobId"] not in seen]
            by_site: dict[str, list[float]] = collections.defaultdict(list)
            for job in jobs:
                by_site[_site(job)].append(_seconds(job))
            busy = sum(sum(v) for v in by_site.values())
            print(f"\nwarm session, {label}: {seconds:.1f} s, {result.spark_jobs} Spark jobs, {busy:.1f} s inside jobs")
            print(f"{'jobs':>5} {'job s':>7}  started by")
            for site, times in sorted(by_site.items(), key=lambda kv: -sum(kv[1]))[: args.top]:
                print(f"{len(times):>5} {sum(times):>7.2f}  {site}")
            groups: dict[str, list[float]] = collections.defaultdict(list)
            for job in jobs:
                groups[job.get("jobGroup") or "-"].append(_seconds(job))
            if args.detail:
                for job in sorted(jobs, key=lambda j: j["jobId"]):
                    print(
                        f"    job {job['jobId']:>4} {_seconds(job):>6.2f}s tasks {job.get('numTasks', 0):>4}"
                        f" (skipped {job.get('numSkippedTasks', 0):>3}) stages {job.get('stageIds')} {_site(job)[:110]}"
                    )
            if args.stacks:
                app = f"{spark.sparkContext.uiWebUrl}/api/v1/applications/{spark.sparkContext.applicationId}"
                shown = 0
                for job in sorted(jobs, key=lambda j: j["jobId"]):
                    if args.stacks in _site(job) and shown < 4:
                        shown += 1
                        stage = max(job.get("stageIds") or [0])
                        with urllib.request.urlopen(f"{app}/stages/{stage}", timeout=30) as answer:
                            details = json.load(answer)[0].get("details", "")
                        print(f"    --- job {job['jobId']} stage {stage}: {_site(job)[:90]}")
                        kept = [
                            line
                            for line in details.splitlines()
                            if not line.startswith(("java.", "scala.", "sun.", "jdk."))
                        ]
                        print("\n".join("      " + line for line in kept[20:75]))
            if args.sql:
                app = f"{spark.sparkContext.uiWebUrl}/api/v1/applications/{spark.sparkContext.applicationId}"
                with urllib.request.urlopen(
                    f"{app}/sql?details=true&planDescription=true&length=100000", timeout=60
                ) as answer:
                    executions = json.load(answer)
                mine = {j["jobId"] for j in jobs}
                for execution in executions:
                    ids = set(execution.get("successJobIds", [])) | set(execution.get("failedJobIds", []))
                    if args.sql in execution.get("description", "") and ids & mine:
                        print(f"    --- SQL {execution['id']} jobs {sorted(ids)}: {execution['description'][:80]}")
                        print(
                            "\n".join(
                                "      " + line for line in execution.get("planDescription", "").splitlines()[:120]
                            )
                        )
                        break
            print("  by step: " + ", ".join(f"{g} {len(t)} jobs {sum(t):.1f}s" for g, t in sorted(groups.items())))
            print(
                "  step wall (calls, longest call; side-by-side calls overlap): "
                + ", ".join(f"{g} {len(t)}x {max(t):.2f}s" for g, t in STEP_WALL.items())
            )
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
