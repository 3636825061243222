"""The landing zone → bronze rows: one row per landed record, with its lineage.

Only the part files a committed manifest lists are read (a file the manifest does not name, left
by a crashed attempt, is never loaded). Pages are read with an explicit schema in FAILFAST mode:
a truncated gzip or a line that is not JSON fails the whole run with the file named, and nothing
of the run is loaded (the run stays pending; see docs/transform.md). Valid JSON that Spark's default limits
refuse (deep nesting, long numbers or strings) is read (`schemas.JSON_READ_LIMITS`) and left to validation.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ..entities import ENTITIES, EntitySpec
from ..landing import LandingError, Manifest, run_ingest_date, run_prefix
from ..storage import spark_path
from .schemas import BRONZE_SCHEMA, JSON_READ_LIMITS, LANDING_HEAD_SCHEMA, LANDING_PAGE_SCHEMA, LINEAGE_FIELDS

# `extracted_at` as the extractor writes it: 2026-11-27T03:34:00.123456Z (an offset is accepted too).
LANDING_TIMESTAMP_PATTERN = "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS]XXX"
LANDING_KEY = r"(raw/[^/]+/ingest_date=[^/]+/run_id=[^/]+/[^/]+)$"
_PATH_IN_ERROR = re.compile(r"((?:file:|s3a?://)\S*?\.jsonl\.gz)")


class LandingReadError(LandingError):
    """A landing file of a committed run cannot be read; nothing of the run is loaded."""


@dataclass(frozen=True)
class LoadPlan:
    """What the transform needs to know about one committed landing run (from its manifest)."""

    run_id: str
    ingest_date: dt.date
    mode: str
    started_at: dt.datetime  # UTC; rows last seen before it and absent from a complete listing are deleted
    parts: Mapping[str, tuple[str, ...]]  # entity -> landing keys, in order
    pages: Mapping[str, int]
    records: Mapping[str, int]
    complete_listing: Mapping[str, bool]
    manifest: Optional[Manifest] = field(repr=False, compare=False, default=None)


def plan_run(manifest: Manifest, entities: tuple[EntitySpec, ...] = ENTITIES) -> LoadPlan:
    """Check a committed manifest's parts are the run's own and take what the transform uses from it."""
    run_id = manifest.run_id
    parts, pages, records, complete = {}, {}, {}, {}
    for spec in entities:
        entry, prefix = manifest.entity(spec.name), run_prefix(spec.name, run_id)
        keys = tuple(part.key for part in entry.parts)
        for key in keys:
            if not key.startswith(prefix):
                raise LandingError(f"run {run_id}: {spec.name} part {key} is outside {prefix}")
        parts[spec.name], pages[spec.name], records[spec.name] = keys, entry.pages, entry.records
        complete[spec.name] = entry.complete_listing
    return LoadPlan(
        run_id=run_id,
        ingest_date=dt.date.fromisoformat(run_ingest_date(run_id)),
        mode=manifest.mode,
        started_at=run_started_at(manifest),
        parts=parts,
        pages=pages,
        records=records,
        complete_listing=complete,
        manifest=manifest,
    )


def run_started_at(manifest: Manifest) -> dt.datetime:
    """The manifest's started_at; failing that, the second encoded in the run id (when the run was made)."""
    text = manifest.started_at
    if isinstance(text, str) and text:
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        except ValueError:
            pass
    return dt.datetime.strptime(manifest.run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)


def read_landing_pages(
    spark: SparkSession, lake_root: str, keys: tuple[str, ...], scheme: str, records: bool = True
) -> DataFrame:
    """The pages of the given landing parts (I/O), plus `landing_path`; FAILFAST on anything unreadable.

    `records=False` reads the pages without their records (`LANDING_HEAD_SCHEMA`): the JSON parser skips
    `data`, which is most of a page; what a fingerprinted landing's classification needs.
    """
    paths = [spark_path(lake_root, key, scheme) for key in keys]
    schema = LANDING_PAGE_SCHEMA if records else LANDING_HEAD_SCHEMA
    pages = spark.read.schema(schema).options(**JSON_READ_LIMITS).option("mode", "FAILFAST").json(paths)
    return pages.select("*", F.col("_metadata.file_path").alias("landing_path"))


def parse_landing_timestamp(col: Column) -> Column:
    return F.try_to_timestamp(col, F.lit(LANDING_TIMESTAMP_PATTERN))


def _page_lineage(run_id: str, pages: DataFrame, items: Column) -> DataFrame:
    """Page-level lineage, computed once per page, and the page's `items` to explode."""
    return pages.select(
        F.lit(run_id).alias("run_id"),
        F.to_date(F.lit(run_ingest_date(run_id))).alias("ingest_date"),
        parse_landing_timestamp(F.col("extracted_at")).alias("extracted_at"),
        F.regexp_extract(F.col("landing_path"), LANDING_KEY, 1).alias("landing_file"),
        F.col("page_index"),
        F.col("parent.apprenticeship_id").alias("parent_apprenticeship_id"),
        items.alias("_items"),
    )


def explode_pages(run_id: str) -> Callable[[DataFrame], DataFrame]:
    """Landing pages → bronze rows (`BRONZE_SCHEMA`): one per record, raw text kept, lineage and fingerprint attached.

    Empty pages yield no row (a listing with no records has nothing to keep); the transform
    learns of them from the page counts it observes while reading.
    """
    from .classify import fingerprint

    def step(pages: DataFrame) -> DataFrame:
        data = F.coalesce(F.col("data"), F.array().cast("array<string>"))
        # A landing without fingerprints (older extractors) gets them from the records' text instead.
        prints = F.coalesce(F.col("fingerprints"), F.array_repeat(F.lit(None).cast("bigint"), F.size(data)))
        lineage = _page_lineage(run_id, pages, F.arrays_zip(data.alias("raw"), prints.alias("fp")))
        exploded = lineage.select("*", F.posexplode("_items").alias("record_index", "_item"))
        fp = fingerprint(F.col("_item.fp"), F.col("parent_apprenticeship_id"), F.col("_item.raw"))
        values = {"raw_record": F.col("_item.raw"), "fingerprint": fp}
        return exploded.select(*[values.get(f.name, F.col(f.name)).alias(f.name) for f in BRONZE_SCHEMA.fields])

    return step


def explode_fingerprints(run_id: str) -> Callable[[DataFrame], DataFrame]:
    """Landing pages read without their records (`records=False`) → one row per record: lineage and fingerprint."""
    from .classify import fingerprint

    def step(pages: DataFrame) -> DataFrame:
        lineage = _page_lineage(run_id, pages, F.coalesce(F.col("fingerprints"), F.array().cast("array<bigint>")))
        exploded = lineage.select("*", F.posexplode("_items").alias("record_index", "_fp"))
        fp = fingerprint(F.col("_fp"), F.col("parent_apprenticeship_id"), F.lit(None).cast("string"))
        return exploded.select(*[F.col(name) for name, _, _ in LINEAGE_FIELDS], fp.alias("fingerprint"))

    return step


def page_checks(run_id: str, entity: str, records: str = "data") -> list[Column]:
    """Aggregates over a run's pages that prove the landing is what its manifest says (for `observe`).

    `records`: the page's array that holds one item per record (`fingerprints` when `data` was not read).
    """
    size = F.when(F.col(records).isNull(), F.lit(0)).otherwise(F.size(records))  # size(null) differs under ANSI
    empty = size == 0
    unprinted = F.col("fingerprints").isNull() | (F.size("fingerprints") != size)
    return [
        F.count(F.lit(1)).alias("pages"),
        F.sum(size).alias("records"),
        F.sum(F.when(F.col(records).isNull(), 1).otherwise(0)).alias("pages_without_data"),
        F.sum(F.when(unprinted, 1).otherwise(0)).alias("pages_without_fingerprints"),
        F.sum(F.when(F.col("run_id") != F.lit(run_id), 1).otherwise(0)).alias("pages_of_other_runs"),
        F.sum(F.when(F.col("entity") != F.lit(entity), 1).otherwise(0)).alias("pages_of_other_entities"),
        F.sum(F.when(parse_landing_timestamp(F.col("extracted_at")).isNull(), 1).otherwise(0)).alias(
            "pages_without_time"
        ),
        F.sum(F.when(F.col("page_index").isNull(), 1).otherwise(0)).alias("pages_without_index"),
        # Listings that returned nothing: the parents whose projects are known to be none.
        F.concat_ws(",", F.collect_list(F.when(empty, F.col("parent.apprenticeship_id").cast("string")))).alias(
            "empty_parents"
        ),
    ]


@dataclass(frozen=True)
class PageChecks:
    """What `page_checks` observed over one entity's pages of a run, for `landing_problems` and the deletions.

    All zero and no empty listings: nothing was read (an entity without parts, or carried from an identical run).
    """

    pages: int = 0
    records: int = 0
    pages_without_data: int = 0
    pages_without_fingerprints: int = 0
    pages_of_other_runs: int = 0
    pages_of_other_entities: int = 0
    pages_without_time: int = 0
    pages_without_index: int = 0
    empty_parents: str = ""  # the parents whose listing returned nothing, comma-separated (`parse_id_list`)

    @classmethod
    def of(cls, observed: Mapping[str, Any]) -> PageChecks:
        """From the values of `page_checks` (an Observation's, a row's); a sum over no pages is null: 0."""
        counts = {f.name: int(observed.get(f.name) or 0) for f in fields(cls) if f.name != "empty_parents"}
        return cls(**counts, empty_parents=str(observed.get("empty_parents") or ""))


def landing_problems(run_id: str, entity: str, observed: PageChecks, expected_pages: int) -> list[str]:
    """Why the pages read do not match the landing contract (empty list: they do)."""
    problems = []
    if observed.pages != expected_pages:
        problems.append(f"{entity}: {observed.pages} pages read, the manifest says {expected_pages}")
    for count, what in (
        (observed.pages_without_data, "have no data array"),
        (observed.pages_of_other_runs, "belong to another run"),
        (observed.pages_of_other_entities, "belong to another entity"),
        (observed.pages_without_time, "have no readable extracted_at"),
        (observed.pages_without_index, "have no page_index"),
    ):
        if count:
            problems.append(f"{entity}: {count} page(s) {what}")
    return problems


def parse_id_list(text: Optional[str]) -> list[int]:
    return [int(value) for value in (text or "").split(",") if value]


def is_read_failure(exc: BaseException) -> bool:
    """Whether a failed landing load failed on the landing's content (rather than, say, the lake's storage)."""
    return any(marker in str(exc) for marker in _READ_FAILURES)


def landing_read_error(
    run_id: str, keys: tuple[str, ...], exc: BaseException, culprit: Optional[str] = None
) -> Optional[LandingReadError]:
    """A clear message for a failed landing read: the file (named by Spark, or found by `find_unreadable_part`)
    and the cause; None if the failure is not a read error."""
    text = str(exc)
    cause = next((marker for marker in _READ_FAILURES if marker in text), None)
    if cause is None:
        return None
    match = _PATH_IN_ERROR.search(text)
    if match:
        where = f"landing file {match.group(1)}"
    elif culprit:
        where = f"landing file {culprit}"
    else:
        where = f"one of its {len(keys)} landing file(s) ({', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''})"
    return LandingReadError(f"run {run_id}: {where} cannot be read ({cause}); nothing of the run was loaded")


def find_unreadable_part(spark: SparkSession, lake_root: str, keys: tuple[str, ...], scheme: str) -> Optional[str]:
    """The first landing part that fails to read on its own (failure path only: Spark does not always name it)."""
    for key in keys:
        try:
            read_landing_pages(spark, lake_root, (key,), scheme).agg(
                F.sum(F.size("data")), F.count("page_index")
            ).collect()
        except Exception as exc:  # any failure of this one part names it
            if is_read_failure(exc):
                return key
    return None


_READ_FAILURES = (
    "StreamConstraintsException",  # valid JSON beyond `JSON_READ_LIMITS` (named first: the clearer cause)
    "Malformed records are detected",
    "MALFORMED_RECORD_IN_PARSING",
    "Unexpected end of input stream",
    "Not in GZIP format",
    "invalid stored block lengths",
    "invalid distance",
    "incorrect header check",
    "invalid block type",
    "Corrupt GZIP trailer",
    "FileNotFoundException",
    "PATH_NOT_FOUND",
    "does not exist",
    "EOFException",
    "ZipException",
)


def read_error_of(run_id: str, problems: list[str]) -> LandingReadError:
    return LandingReadError(
        f"run {run_id}: the landing does not match its manifest ({'; '.join(problems)}); nothing of the run was loaded"
    )
