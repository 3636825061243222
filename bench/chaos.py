"""Chaos at scale: the reliability suite's scenarios at 20,000+ apprenticeships, as a table (`make chaos`).

Not a test: it prints a table (and exits non-zero if a scenario does not end equal to the ground
truth). Usage::

    .venv/bin/python bench/chaos.py                      # 20,000 apprenticeships, every scenario (~10-15 min, 2 cores)
    .venv/bin/python bench/chaos.py --scale 2000 --only faults transform-merge

Scenarios (each on its own lake in --work-dir, compared with `sample_api.dump.ground_truth` by
tests/support/oracle.py's model: bronze holds every served record once, silver exactly the valid
records cleaned, quarantine exactly the broken ones with their reasons, gold exactly their joins):

* faults            every fault of the sample API at once (500s, dropped connections, 429 with
                    Retry-After, expiring tokens, latency, a page-size cap), corrupt records, and the
                    API restarted mid-extraction (every pagination token dies); extract + transform
* extract-kills     jobs/extract.py SIGKILLed mid fan-out, resumed, SIGKILLed again while a part is
                    written (temp file written, not renamed), resumed again; then the transform
* transform-bronze  jobs/transform.py SIGKILLed right after its bronze commits (before silver); re-run
* transform-merge   two jobs/pipeline.py started together (the second must be refused); the winner
                    SIGKILLed while its silver MERGE of projects has data files written but no commit;
                    the transform re-run
* s3-faults         the lake on a local S3 endpoint (moto) reached only through the S3 fault proxy
                    (multiverse_etl/devtools/s3_faults.py): 503 SlowDown, connection resets before and after
                    forwarding (a write done, its answer lost), slow answers on 3% of every request type, and
                    each kind on the first landing, lock and S3A writes (a Delta commit's answer lost); the
                    pipeline (lock, extract, transform), then the lake read back through the proxy

Every kill takes the job's whole process group (Python and its Spark JVM). Extraction and the
re-runs that repair run in this process (one SparkSession); the killed jobs are subprocesses.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from multiverse_etl.logs import setup_logging
from sample_api.dump import ground_truth
from sample_api.settings import ServerSettings
from support.config import make_config
from support.delta_log import lake_snapshot, latest_version, write_in_flight
from support.fault_server import RestartableApi
from support.lake import Comparison, compare_lake
from support.oracle import ENTITIES, Reference, reference_lake
from support.processes import job_command, job_env, kill_when, paused

setup_logging("WARNING")

log = logging.getLogger("chaos")


@dataclass
class Row:
    scenario: str
    faults: str
    retried: int
    comparison: Optional[Comparison]
    seconds: float
    note: str = ""

    @property
    def result(self) -> str:
        if self.comparison is None:
            return "FAIL: " + self.note[:70]
        if not self.comparison.ok:
            return f"FAIL: {self.comparison.problems[0][:70]}"
        return "PASS"


class Chaos:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scale, self.seed = args.scale, args.seed
        self.work = Path(args.work_dir)
        self.spark = None
        self._truth: dict[float, Reference] = {}

    # ------------------------------------------------------------ shared pieces

    def session(self):
        if self.spark is None:
            from multiverse_etl.spark import build_spark

            config = self.config(str(self.work / "unused"))
            self.spark = build_spark(config, "multiverse-etl-chaos")
            self.spark.conf.set("spark.databricks.delta.snapshotPartitions", "1")
        return self.spark

    def config(self, lake: str, api_url: str = "http://127.0.0.1:9", **extract):
        config = make_config(
            lake,
            env="local",
            api={"url": api_url, "backoff_base_s": 0.05, "backoff_max_s": 2.0, "max_attempts": 12},
            extract={"progress_interval_s": 3600.0, **extract},
            transform={"shuffle_partitions": self.args.shuffle_partitions},
        )
        return dataclasses.replace(
            config,
            spark=dataclasses.replace(
                config.spark,
                conf={"spark.driver.memory": "3g", "spark.ui.enabled": "false", "spark.sql.adaptive.enabled": "false"},
            ),
        )

    def reference(self, corrupt_rate: float = 0.0) -> Reference:
        if corrupt_rate not in self._truth:
            self._truth[corrupt_rate] = reference_lake(ground_truth(self.scale, self.seed, 0, corrupt_rate))
        return self._truth[corrupt_rate]

    def lake(self, name: str) -> Path:
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def repair(self, lake: Path, reference: Reference) -> Comparison:
        """The documented recovery of the transform: run it again; then compare with the ground truth."""
        from multiverse_etl.transform import run_transform

        config = self.config(str(lake))
        run_transform(self.session(), config)
        return compare_lake(self.session(), config, reference, None)

    def jobs_args(self, *extra: str) -> list[str]:
        return [
            "--set",
            f"transform.shuffle_partitions={self.args.shuffle_partitions}",
            "--set",
            "spark.conf.spark.driver.memory=3g",
            *extra,
        ]

    # ------------------------------------------------------------ scenarios

    def faults(self) -> Row:
        from multiverse_etl.extract import run_extract
        from multiverse_etl.transform import run_transform

        corrupt = 0.02
        settings = ServerSettings(
            scale=self.scale,
            seed=self.seed,
            corrupt_rate=corrupt,
            fault_rate=0.1,
            drop_rate=0.02,
            rate_limit=2000.0,
            token_ttl=500,
            latency_ms=2,
            max_page_size=100,
            fault_seed=3,
        )
        api = RestartableApi(settings)
        lake = self.lake("faults")
        config = self.config(str(lake), api.url, part_max_bytes=256 * 1024)
        try:
            restarter = api.restart_when(lambda: api.requests >= 0.4 * self.scale)  # mid fan-out, mid walk
            extracted = run_extract(config)
            restarter.join(timeout=5)
        finally:
            api.stop()
        run_transform(self.session(), config)
        comparison = compare_lake(self.session(), config, self.reference(corrupt), extracted.run_id)
        faults = api.describe_faults() + f" corrupt records {corrupt:.0%}"
        if api.restarts != 1:
            comparison.problems.append("the API was not restarted")
        return Row(
            "every API fault at once + API restart mid-extraction",
            faults,
            extracted.manifest.retries,
            comparison,
            0.0,
        )

    def extract_kills(self) -> Row:
        api = RestartableApi(
            ServerSettings(scale=self.scale, seed=self.seed, fault_rate=0.05, drop_rate=0.01, fault_seed=4)
        )
        lake = self.lake("extract-kills")
        command = job_command(
            "extract",
            str(lake),
            "--api-url",
            api.url,
            "--set",
            "api.concurrency=16",
            "--set",
            f"extract.part_max_bytes={max(2048, 3 * self.scale)}",
        )
        logs = self.work / "extract-kills.log"
        try:
            with open(logs, "w") as out:
                first = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, env=job_env(), start_new_session=True
                )
            parts = lambda: len(list((lake / "raw" / "projects").rglob("part-*.jsonl.gz"))) >= 3  # noqa: E731
            kill_when(first, parts, timeout_s=300, poll_s=0.01, what="mid fan-out", log=logs)
            run_id = next((lake / "_state" / "extract_runs").glob("*.json")).stem
            marker = self.work / "extract-kills.paused"
            marker.unlink(missing_ok=True)
            env = job_env(TEST_PAUSE_AT="local-rename", TEST_PAUSE_NTH="2", TEST_PAUSE_MARKER=str(marker))
            with open(logs, "a") as out:
                second = subprocess.Popen(
                    paused(command + ["--resume", run_id]),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            kill_when(second, marker.exists, timeout_s=300, poll_s=0.01, what="during a part write", log=logs)
            leftovers = list(lake.rglob(".tmp-*"))
            done = subprocess.run(
                command + ["--resume", run_id], capture_output=True, text=True, timeout=600, env=job_env()
            )
        finally:
            api.stop()
        if done.returncode != 0:
            return Row(
                "extractor SIGKILL mid fan-out, then while a part is written; --resume x2",
                "",
                0,
                None,
                0.0,
                done.stderr.strip().splitlines()[-1][:120],
            )
        from multiverse_etl.landing import read_manifest
        from multiverse_etl.storage import open_storage

        manifest = read_manifest(open_storage(str(lake)), run_id)
        comparison = self.repair(lake, self.reference())
        if not leftovers:
            comparison.problems.append("no half-written part: the second kill was not during a part write")
        return Row(
            "extractor SIGKILL mid fan-out, then while a part is written; --resume x2",
            f"2 SIGKILLs ({len(leftovers)} half-written temp part left) " + api.describe_faults(),
            manifest.retries,
            comparison,
            0.0,
            f"attempt {manifest.attempt}",
        )

    def extract_clean(self, lake: Path) -> str:
        from multiverse_etl.extract import run_extract
        from support.extract import start_api

        server = start_api(scale=self.scale, seed=self.seed)
        try:
            return run_extract(self.config(str(lake), server.url)).run_id
        finally:
            server.stop()

    def transform_bronze(self) -> Row:
        lake = self.lake("transform-bronze")
        self.extract_clean(lake)
        logs = self.work / "transform-bronze.log"
        with open(logs, "w") as out:
            job = subprocess.Popen(
                job_command("transform", str(lake), *self.jobs_args()),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=job_env(),
                start_new_session=True,
            )
        bronze_done = lambda: all(latest_version(lake / f"bronze/{e}") >= 1 for e in ENTITIES)  # noqa: E731
        kill_when(job, bronze_done, timeout_s=900, poll_s=0.01, what="between bronze and silver", log=logs)
        state = lake_snapshot(lake)
        silver_untouched = all(state["versions"][f"silver/{e}"] == [0] for e in ENTITIES)
        comparison = self.repair(lake, self.reference())
        if not silver_untouched:
            comparison.problems.append("silver had moved before the kill")
        return Row(
            "transform SIGKILL between bronze and silver; re-run",
            "SIGKILL after the bronze commits",
            0,
            comparison,
            0.0,
        )

    def transform_merge(self) -> Row:
        from support.extract import start_api

        lake = self.lake("transform-merge")
        server = start_api(scale=self.scale, seed=self.seed)
        try:
            pipeline = job_command("pipeline", str(lake), "--api-url", server.url, *self.jobs_args())
            logs = [self.work / "pipeline-a.log", self.work / "pipeline-b.log"]
            procs = []
            for path in logs:
                with open(path, "w") as out:
                    procs.append(
                        subprocess.Popen(
                            pipeline, stdout=out, stderr=subprocess.STDOUT, env=job_env(), start_new_session=True
                        )
                    )
            started = time.monotonic()
            while all(p.poll() is None for p in procs) and time.monotonic() - started < 120:
                time.sleep(0.01)
            ended = [i for i, p in enumerate(procs) if p.poll() is not None]
            if len(ended) != 1:
                for p in procs:
                    if p.poll() is None:
                        os.killpg(os.getpgid(p.pid), 9)
                return Row(
                    "2 pipelines at once; SIGKILL during a MERGE; re-run",
                    "",
                    0,
                    None,
                    0.0,
                    "the second pipeline was not refused",
                )
            refused_in = time.monotonic() - started
            loser, winner = ended[0], 1 - ended[0]
            refused = "locked by" in logs[loser].read_text() and procs[loser].returncode != 0
            in_merge = lambda: write_in_flight(lake / "silver/projects")  # noqa: E731
            kill_when(procs[winner], in_merge, timeout_s=900, poll_s=0.005, what="during the MERGE", log=logs[winner])
        finally:
            server.stop()
        state = lake_snapshot(lake)
        caught = state["versions"]["silver/projects"] == [0] and bool(state["uncommitted"]["silver/projects"])
        comparison = self.repair(lake, self.reference())
        note = []
        if not refused:
            note.append("the loser did not say 'locked by'")
        if not caught:
            note.append("the MERGE had committed before the kill")
        if len(state["manifests"]) != 1:
            note.append(f"{len(state['manifests'])} runs landed")
        return Row(
            f"2 pipelines at once (2nd refused in {refused_in:.1f}s); SIGKILL during a silver MERGE; re-run",
            f"concurrent start, SIGKILL with {len(state['uncommitted']['silver/projects'])} MERGE files uncommitted",
            0,
            comparison if not note else dataclasses.replace(comparison, problems=comparison.problems + note),
            0.0,
            "; ".join(note),
        )

    def s3_faults(self) -> Row:
        import uuid

        from multiverse_etl.devtools.local_s3 import start_local_s3
        from multiverse_etl.devtools.s3_faults import QUICK_S3A_RETRIES, S3FaultProxy, pipeline_plan
        from multiverse_etl.pipeline import run_pipeline
        from multiverse_etl.spark import use_s3a_bucket
        from support.extract import start_api

        bucket = f"chaos-s3-{uuid.uuid4().hex[:8]}"  # S3A settings are per bucket: the proxy's endpoint for this one
        store = start_local_s3(bucket)
        server = start_api(scale=self.scale, seed=self.seed)
        try:
            with S3FaultProxy(store.endpoint_url, pipeline_plan(seed=self.seed)) as proxy:
                config = make_config(
                    f"s3://{bucket}/lake",
                    env="local-s3",
                    s3={"endpoint_url": proxy.endpoint_url, **QUICK_S3A_RETRIES},
                    api={"url": server.url, "backoff_base_s": 0.05, "backoff_max_s": 2.0, "max_attempts": 12},
                    extract={"progress_interval_s": 3600.0},
                    transform={"shuffle_partitions": self.args.shuffle_partitions},
                )
                use_s3a_bucket(self.session(), config, bucket)
                result = run_pipeline(config, self.session, mode="full")
                comparison = compare_lake(self.session(), config, self.reference(), result.extract.run_id)
        finally:
            server.stop()
            store.stop()
        comparison.problems += proxy.missing()
        return Row(
            "S3 faults on the lake: landing, lock, Delta commits through S3A, reads",
            proxy.describe(),
            proxy.injected_by(),
            comparison,
            0.0,
        )


SCENARIOS: dict[str, Callable[[Chaos], Row]] = {
    "faults": Chaos.faults,
    "extract-kills": Chaos.extract_kills,
    "transform-bronze": Chaos.transform_bronze,
    "transform-merge": Chaos.transform_merge,
    "s3-faults": Chaos.s3_faults,
}


def table(rows: list[Row], scale: int) -> str:
    header = (
        "scenario",
        "faults injected",
        "requests retried",
        "records expected",
        "records in the lake",
        "missing",
        "duplicated",
        "quarantined",
        "result",
        "wall s",
    )
    lines = [
        [
            r.scenario,
            r.faults,
            f"{r.retried:,}",
            *(
                [
                    f"{r.comparison.expected:,}",
                    f"{r.comparison.in_lake:,}",
                    f"{r.comparison.missing:,}",
                    f"{r.comparison.duplicated:,}",
                    f"{r.comparison.quarantined:,}",
                ]
                if r.comparison
                else ["-"] * 5
            ),
            r.result,
            f"{r.seconds:.0f}",
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    out = [
        f"chaos at {scale:,} apprenticeships (records = apprenticeships + projects + programmes served)",
        " | ".join(h.ljust(w) for h, w in zip(header, widths)),
        "-|-".join("-" * w for w in widths),
    ]
    out += [" | ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--only", nargs="*", choices=list(SCENARIOS), help="run only these scenarios")
    parser.add_argument("--shuffle-partitions", type=int, default=4)
    parser.add_argument("--work-dir", help="where the lakes go (default: a temporary folder, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    temporary = args.work_dir is None
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="chaos-")
    chaos = Chaos(args)
    rows: list[Row] = []
    started = time.monotonic()
    try:
        for name in args.only or SCENARIOS:
            t0 = time.monotonic()
            print(f"[chaos] {name} at {args.scale:,} ...", file=sys.stderr, flush=True)
            try:
                row = SCENARIOS[name](chaos)
            except Exception as exc:  # a scenario that breaks is a row that says so
                row = Row(name, "", 0, None, 0.0, f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}")
            row.seconds = time.monotonic() - t0
            if row.comparison is not None and not row.comparison.ok:
                print(row.comparison.describe(), file=sys.stderr)
            print(f"[chaos] {name}: {row.result} in {row.seconds:.0f}s", file=sys.stderr, flush=True)
            rows.append(row)
    finally:
        if chaos.spark is not None:
            chaos.spark.stop()
        if temporary and not args.keep:
            shutil.rmtree(args.work_dir, ignore_errors=True)
    print(table(rows, args.scale))
    print(f"total {time.monotonic() - started:.0f}s on {os.cpu_count()} cores")
    return 0 if all(r.result == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
