"""Benchmark: the transform's wall time against a baseline measured in the same run.

For each scale, a landing run is synthesised straight from the sample API's data (the same
records the replica serves, corruption included, written as the extractor writes them: gzip
JSON Lines parts, one page per line, then the manifest) instead of being extracted over HTTP.

* baseline  – the same landing read (same page schema, FAILFAST) and written to a Delta table,
              untransformed: the floor any load of this landing pays;
* bronze    – the same landing exploded to one row per record with its lineage and written to
              Delta: what the lake layout's first table alone costs, before any check;
* transform – `run_transform` on a fresh lake holding only that landing: bronze, cleaning,
              quarantine, deduplication, MERGE into silver, gold, audit.

Then, at each scale, an incremental run (generation 1 of the replica's data after generation 0) and
a run over a landing that changes nothing (generation 1 again); a soak of `--soak-runs` consecutive
incremental runs on one lake (generations 1, 2, …; the last against the second); and the validation
step's CPU per record (`validate_records` alone, on the largest scale's bronze, net of reading it).

Prints tables; nothing is asserted. Usage (2 cores, about half an hour with the defaults):

    .venv/bin/python bench/transform.py                     # 2,000 / 100,000 / 1,000,000, soak 30 x 2,000
    .venv/bin/python bench/transform.py --scales 2000 --soak-runs 5
    PYTHONPATH=<other checkout>/lib .venv/bin/python bench/transform.py --scales 2000   # that checkout's library
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import shutil
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

from multiverse_etl.config import load_config
from multiverse_etl.landing import (
    FINGERPRINT_SCHEME,
    EntityManifest,
    LandingDigest,
    Manifest,
    Part,
    landing_line,
    new_run_id,
    part_key,
    write_manifest,
)
from multiverse_etl.logs import setup_logging
from multiverse_etl.storage import open_storage, spark_path

PAGE_SIZE = 1000
PART_MAX_BYTES = 64 * 1024 * 1024


class _Part:
    """One gzip JSON Lines part being filled (rolled at PART_MAX_BYTES compressed)."""

    def __init__(self, storage, entity: str, run_id: str) -> None:
        self.storage, self.entity, self.run_id = storage, entity, run_id
        self.parts: list[Part] = []
        self.digest = LandingDigest()
        self._open()

    def _open(self) -> None:
        self.zip = zlib.compressobj(5, zlib.DEFLATED, 31)
        self.chunks: list[bytes] = []
        self.size = self.pages = self.records = 0

    def add(self, line: bytes, records: int) -> None:
        self.digest.add_line(line)
        out = self.zip.compress(line)
        if out:
            self.chunks.append(out)
            self.size += len(out)
        self.pages += 1
        self.records += records
        if self.size >= PART_MAX_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.pages:
            return
        self.chunks.append(self.zip.flush())
        data = b"".join(self.chunks)
        key = part_key(self.entity, self.run_id, len(self.parts))
        self.storage.put(key, data)
        self.parts.append(Part(key, self.pages, self.records, len(data)))
        self._open()


def _line(entity: str, run_id: str, page_index: int, parent, rows: list[bytes], extracted_at: str) -> bytes:
    """A landing line as the extractor writes it: the page spliced in, each record's fingerprint in the head."""
    import orjson

    from multiverse_etl.landing import record_fingerprint

    pagination = b'{"next_token":null,"previous_token":null,"page_size":1000}'
    payload = b'{"data":[' + b",".join(rows) + b'],"pagination":' + pagination + b"}"
    path = f"/apprenticeships/{parent}/projects" if parent is not None else f"/{entity}"
    prints = [record_fingerprint(record, parent) for record in orjson.loads(payload)["data"]]
    return landing_line(
        entity,
        run_id,
        extracted_at,
        page_index,
        path,
        {"page_size": PAGE_SIZE},
        {"apprenticeship_id": parent} if parent is not None else None,
        payload,
        prints,
    )


def synthesise_landing(
    root: str, scale: int, seed: int = 42, corrupt_rate: float = 0.01, generation: int = 0
) -> Manifest:
    """Write one full run of the dataset the replica would serve at `scale` (and `generation`); the manifest."""
    from multiverse_etl.extract.paginate import utc_now_iso
    from sample_api.data import build_dataset

    storage = open_storage(root)
    ds = build_dataset(scale, seed, generation, corrupt_rate)
    run_id = new_run_id()
    started = utc_now_iso()
    writers = {e: _Part(storage, e, run_id) for e in ("programmes", "apprenticeships", "projects")}
    rows = [ds.programme_rows[i] for i in range(len(ds.programme_rows))]
    writers["programmes"].add(_line("programmes", run_id, 0, None, rows, utc_now_iso()), len(rows))
    for page, start in enumerate(range(0, len(ds), PAGE_SIZE)):
        rows = [ds.apprenticeship_row(pos) for pos in range(start, min(start + PAGE_SIZE, len(ds)))]
        writers["apprenticeships"].add(_line("apprenticeships", run_id, page, None, rows, utc_now_iso()), len(rows))
    for aid in ds.ids:
        first, count = ds.project_range(aid)
        for page, start in enumerate(range(0, max(count, 1), PAGE_SIZE)):
            rows = [ds.project_row(first + i, i) for i in range(start, min(start + PAGE_SIZE, count))]
            writers["projects"].add(_line("projects", run_id, page, aid, rows, utc_now_iso()), len(rows))
    entities = {}
    for entity, writer in writers.items():
        writer.flush()
        entities[entity] = EntityManifest(
            pages=sum(p.pages for p in writer.parts),
            records=sum(p.records for p in writer.parts),
            complete_listing=True,
            parts=tuple(writer.parts),
            digest=writer.digest.text(),
        )
    manifest = Manifest(
        run_id=run_id,
        mode="full",
        started_at=started,
        finished_at=utc_now_iso(),
        entities=entities,
        record_fingerprints=FINGERPRINT_SCHEME,
    )
    write_manifest(storage, manifest)
    return manifest


def baseline(spark, root: str, manifest: Manifest, exploded: bool = False) -> float:
    """Read the landing exactly as the transform does and write it to Delta untransformed.

    The three entities are written side by side, as the transform's bronze step does.
    `exploded`: one row per record with its lineage (the transform's own bronze step), not one per page.
    """
    from concurrent.futures import ThreadPoolExecutor

    from multiverse_etl.transform.read import explode_pages, read_landing_pages

    def copy(entity: str) -> None:
        keys = tuple(p.key for p in manifest.entity(entity).parts)
        pages = read_landing_pages(spark, root, keys, "s3a")
        rows = pages.transform(explode_pages(manifest.run_id)) if exploded else pages
        target = f"_{'bronze_only' if exploded else 'baseline'}/{entity}"
        rows.write.format("delta").mode("overwrite").save(spark_path(root, target))

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(copy, manifest.entities))
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[2000, 100_000, 1_000_000])
    parser.add_argument("--work-dir", help="where the lakes go (default: a temp folder, removed after)")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument(
        "--no-incremental",
        action="store_true",
        help="skip the incremental run (generation 1 after 0) and the run that changes nothing",
    )
    parser.add_argument(
        "--warmup-scale",
        type=int,
        default=2000,
        help="a first, unmeasured baseline, first load and incremental run at this scale, so that all are timed warm (0: none)",
    )
    parser.add_argument(
        "--warmup-rounds",
        type=int,
        default=2,
        help="warm-up rounds (a first load and an incremental run each): after one, the JIT is still compiling "
        "(a first load timed after one round took 10.8 s, the same session's third first load 7.0 s)",
    )
    parser.add_argument(
        "--soak-runs",
        type=int,
        default=30,
        help="consecutive incremental runs on one lake after its first load (0: no soak)",
    )
    parser.add_argument("--soak-scale", type=int, default=2000)
    parser.add_argument("--no-validation-cpu", action="store_true", help="skip the validation CPU measure")
    args = parser.parse_args()
    setup_logging("WARNING")

    from multiverse_etl.spark import build_spark
    from multiverse_etl.transform import run_transform

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-transform-"))
    base = load_config("local", environ={})
    config = dataclasses.replace(
        base,
        transform=dataclasses.replace(base.transform, shuffle_partitions=args.shuffle_partitions),
        spark=dataclasses.replace(base.spark, conf={**base.spark.conf, "spark.driver.memory": args.driver_memory}),
    )
    spark = build_spark(config, "bench-transform")
    rows, phases, runs, soak, cpu = [], [], [], [], []
    steps = _PhaseTimes()
    timed = logging.getLogger("multiverse_etl.transform")
    timed.addHandler(steps)
    timed.setLevel(logging.INFO)
    timed.propagate = False  # kept for the table, not printed as they come
    try:
        if args.warmup_scale:
            # The JVM's first JSON read, Delta write and MERGE pay class loading and JIT: paid here, by neither side
            # (an incremental run too: its plans are not a first load's, and their code is compiled on first use).
            root = str(work / "warmup")
            manifest = synthesise_landing(root, args.warmup_scale)
            baseline(spark, root, manifest)
            baseline(spark, root, manifest, exploded=True)
            for round_ in range(max(1, args.warmup_rounds)):
                lake_root = f"{root}/round-{round_}"
                synthesise_landing(lake_root, args.warmup_scale)
                warmup_config = dataclasses.replace(config, lake=dataclasses.replace(config.lake, root=lake_root))
                run_transform(spark, warmup_config)
                synthesise_landing(lake_root, args.warmup_scale, generation=1)
                run_transform(spark, warmup_config)
            shutil.rmtree(root, ignore_errors=True)
            steps.lines.clear()
        for scale in args.scales:
            root = str(work / f"lake-{scale}")
            shutil.rmtree(root, ignore_errors=True)
            start = time.monotonic()
            manifest = synthesise_landing(root, scale)
            synth = time.monotonic() - start
            landed = {e: v.records for e, v in manifest.entities.items()}
            size = sum(p.bytes for v in manifest.entities.values() for p in v.parts)
            base_s = baseline(spark, root, manifest)
            bronze_s = baseline(spark, root, manifest, exploded=True)
            lake_config = dataclasses.replace(config, lake=dataclasses.replace(config.lake, root=root))
            start = time.monotonic()
            result = run_transform(spark, lake_config)
            transform_s = time.monotonic() - start
            report = result.runs[0]
            phases.append((scale, "first load", list(steps.lines)))
            steps.lines.clear()
            rows.append(
                (
                    scale,
                    landed["projects"],
                    size / 1e6,
                    synth,
                    base_s,
                    bronze_s,
                    transform_s,
                    sum(c.quarantined_rows for c in report.entities),
                )
            )
            runs.append((scale, "first load (generation 0)", transform_s, transform_s, result))
            for label, generation in (
                ()
                if args.no_incremental
                else (("incremental (generation 1 after 0)", 1), ("changes nothing (1 again)", 1))
            ):
                synthesise_landing(root, scale, generation=generation)
                start = time.monotonic()
                again = run_transform(spark, lake_config)
                runs.append((scale, label, time.monotonic() - start, transform_s, again))
                phases.append((scale, label, list(steps.lines)))
                steps.lines.clear()
            print(
                f"scale {scale}: landing {size / 1e6:.0f} MB synthesised in {synth:.0f}s; baseline {base_s:.1f}s; "
                f"bronze only {bronze_s:.1f}s; transform {transform_s:.1f}s",
                flush=True,
            )
            if scale == max(args.scales) and not args.no_validation_cpu:
                cpu = validation_cpu(spark, lake_config, manifest.run_id)
            if not args.work_dir:  # disk: a 1,000,000 lake and its landings are a few GB
                shutil.rmtree(root, ignore_errors=True)
        if args.soak_runs:
            soak = run_soak(spark, config, work / "soak", args.soak_scale, args.soak_runs)
            steps.lines.clear()
    finally:
        spark.stop()
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"{'apprenticeships':>15} {'projects':>10} {'landing MB':>10} {'baseline s':>10} {'bronze only s':>13} {'ratio':>6}"
        f" {'transform s':>11} {'ratio':>6} {'quarantined':>11}"
    )
    for scale, projects, mb, _synth, base_s, bronze_s, transform_s, quarantined in rows:
        print(
            f"{scale:>15,} {projects:>10,} {mb:>10.0f} {base_s:>10.1f} {bronze_s:>13.1f} {bronze_s / base_s:>5.2f}x"
            f" {transform_s:>11.1f} {transform_s / base_s:>5.2f}x {quarantined:>11,}"
        )
    print(
        "\nbaseline: the same landing read (page schema, FAILFAST) and written to Delta untransformed; target ratio < 2x."
        "\nbronze only: the same read, exploded to one row per record with its lineage and written (bronze's layout)."
        + (
            f"\nall timed warm (after {max(1, args.warmup_rounds)} rounds at {args.warmup_scale:,} apprenticeships: a first "
            "load and an incremental run each)"
            if args.warmup_scale
            else ""
        )
    )
    print(
        f"\n{'apprenticeships':>15} {'run':<36} {'seconds':>8} {'vs first load':>13} {'vs raw copy':>11}"
        f" {'Spark jobs':>10} {'gold':>9} {'changed rows':>12} {'bronze +rows':>12} {'skipped':>8}"
    )
    baselines = {row[0]: row[4] for row in rows}
    for scale, label, seconds, first_s, result in runs:
        changed = sum(c.inserted + c.updated + c.deleted for r in result.runs for c in r.entities)
        bronze = sum(c.bronze_rows for r in result.runs for c in r.entities)
        skipped = sum(len(r.skipped) for r in result.runs)
        print(
            f"{scale:>15,} {label:<36} {seconds:>8.1f} {seconds / first_s:>12.0%} {seconds / baselines[scale]:>10.2f}x"
            f" {result.spark_jobs or 0:>10} {result.gold_mode:>9} {changed:>12,} {bronze:>12,} {skipped:>8}"
        )
    if cpu:
        print(
            f"\nvalidation CPU per record (validate_records alone on the {max(args.scales):,} scale's bronze, "
            "net of reading that bronze; executor CPU time of the stages):"
        )
        print(f"{'entity':>16} {'records':>10} {'read CPU s':>10} {'read+validate CPU s':>19} {'µs/record':>10}")
        for entity, records, read_s, validate_s in cpu:
            print(
                f"{entity:>16} {records:>10,} {read_s:>10.1f} {validate_s:>19.1f}"
                f" {1e6 * (validate_s - read_s) / records:>10.1f}"
            )
    if soak:
        print(
            f"\nsoak: {len(soak) - 1} consecutive incremental runs on one lake at {args.soak_scale:,} apprenticeships"
            " (generation g after g-1; files: the latest snapshot's data files of silver/apprenticeships and"
            " silver/projects, log: commit files in their _delta_log)"
        )
        print(
            f"{'run':>4} {'generation':>10} {'seconds':>8} {'Spark jobs':>10} {'gold':>9} {'changed':>8}"
            f" {'silver files':>12} {'log files':>9}"
        )
        for n, (generation, seconds, jobs, mode, changed, files, logs) in enumerate(soak):
            print(
                f"{n:>4} {generation:>10} {seconds:>8.1f} {jobs or 0:>10} {mode:>9} {changed:>8,} {files:>12} {logs:>9}"
            )
        if len(soak) > 2:
            incremental = sorted(s[1] for s in soak[1:])
            print(
                f"run {len(soak) - 1} / run 2: {soak[-1][1] / soak[2][1]:.2f}x; median incremental run"
                f" {incremental[len(incremental) // 2]:.1f}s"
            )
    for scale, label, lines in phases:
        print(
            f"\nwhere the transform's time went at {scale:,}, {label} (the job's own log lines; the three entities run"
            " side by side in bronze and in validation, and in silver, where projects are planned after apprenticeships):"
        )
        for line in lines:
            print(f"  {line}")
    return 0


def run_soak(spark, config, root: Path, scale: int, runs: int) -> list[tuple]:
    """A first load, then `runs` incremental runs on the same lake (generation g after g-1); a row per run."""
    from multiverse_etl.transform import run_transform

    shutil.rmtree(root, ignore_errors=True)
    lake_config = dataclasses.replace(config, lake=dataclasses.replace(config.lake, root=str(root)))
    out = []
    for generation in range(runs + 1):
        synthesise_landing(str(root), scale, generation=generation)
        start = time.monotonic()
        result = run_transform(spark, lake_config)
        seconds = time.monotonic() - start
        changed = sum(c.inserted + c.updated + c.deleted for r in result.runs for c in r.entities)
        tables = [root / "silver" / e for e in ("apprenticeships", "projects")]
        files = sum(int(spark.sql(f"DESCRIBE DETAIL delta.`{t}`").first()["numFiles"]) for t in tables)
        logs = sum(len(list((t / "_delta_log").glob("*.json"))) for t in tables)
        out.append((generation, seconds, result.spark_jobs, result.gold_mode, changed, files, logs))
        print(
            f"soak run {generation}: {seconds:.1f}s, {result.spark_jobs} Spark jobs, gold {result.gold_mode}",
            flush=True,
        )
    shutil.rmtree(root, ignore_errors=True)
    return out


def validation_cpu(spark, config, run_id: str) -> list[tuple[str, int, float, float]]:
    """Executor CPU seconds of reading a run's bronze rows, and of reading and validating them, per entity."""
    from multiverse_etl.entities import APPRENTICESHIPS, PROJECTS
    from multiverse_etl.lake import Lake
    from multiverse_etl.transform.clean import validate_records
    from multiverse_etl.transform.tables import bronze_table, read_table

    lake = Lake.of(config)
    out = []
    for spec in (APPRENTICESHIPS, PROJECTS):
        bronze = read_table(spark, lake, bronze_table(spec)).where(f"run_id = '{run_id}'")
        records = bronze.count()
        read_s = _cpu_seconds(spark, bronze)
        validate_s = _cpu_seconds(spark, bronze.transform(validate_records(spec)))
        out.append((spec.name, records, read_s, validate_s))
    return out


def _cpu_seconds(spark, frame) -> float:
    """Executor CPU time (all tasks of all stages) of computing `frame` whole (a `noop` write), from Spark's REST API."""
    sc = spark.sparkContext
    group = f"bench-cpu-{time.monotonic_ns()}"
    sc.setJobGroup(group, group)
    try:
        frame.write.format("noop").mode("overwrite").save()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    tracker = sc.statusTracker()
    stages = {s for j in tracker.getJobIdsForGroup(group) for s in (tracker.getJobInfo(j).stageIds or [])}
    base = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/stages"
    total_ns = 0
    for stage in stages:
        for attempt in json.load(urllib.request.urlopen(f"{base}/{stage}")):
            total_ns += attempt.get("executorCpuTime", 0)
    return total_ns / 1e9


class _PhaseTimes(logging.Handler):
    """Keeps the transform's timed log lines (bronze, each entity's silver, gold), shortened."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        seconds = re.search(r" in ([0-9.]+)s$", message)
        if not seconds:
            return
        prepared = re.search(r"(\w+): (\d+) landed records: (\d+) unchanged, (\d+) known bad, (\d+) changed", message)
        merged = re.search(r"(\w+): (\d+) changed records, .*\(MERGE\)", message)
        quarantined = re.search(r": (\d+) quarantined rows written", message)
        if prepared:
            what = (
                f"{prepared.group(1)}: classify {int(prepared.group(2)):,}; bronze, validate, rank"
                f" {int(prepared.group(5)):,} changed"
            )
        elif quarantined:
            what = f"quarantine: one write ({int(quarantined.group(1)):,} rows)"
        elif merged:
            what = f"{merged.group(1)}: plan and write silver"
        elif message.startswith("gold "):
            what = f"gold: both tables {message.split()[1]}"
        else:
            return
        self.lines.append(f"{what:<68} {float(seconds.group(1)):6.1f}s")


if __name__ == "__main__":
    sys.exit(main())
