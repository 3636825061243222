"""The landing zone → bronze rows: one row per landed record, with its lineage.

Only the part files a committed manifest lists are read (a file the manifest does not name, left
by a crashed attempt, is never loaded). Pages are read with an explicit schema: a truncated gzip or a
line that is not JSON fails the whole run with the file named, and nothing of the run is loaded (the run
stays pending; see docs/transform.md). Valid JSON that Spark's default limits refuse (deep nesting, long
numbers or strings) is read (`schemas.JSON_READ_LIMITS`) and left to validation. A valid line that even
those limits refuse (a number of more than 100,000 digits) is split on the driver instead (`split_refused_lines`):
its page's records are read one by one, and only the record holding that number is refused (by validation:
`unreadable_record`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .. import jsonsafe
from ..entities import ENTITIES, EntitySpec
from ..landing import LandingError, Manifest, run_ingest_date, run_prefix
from ..storage import spark_path
from .schemas import BRONZE_SCHEMA, JSON_READ_LIMITS, LANDING_HEAD_SCHEMA, LANDING_PAGE_SCHEMA, LINEAGE_FIELDS

# `extracted_at` as the extractor writes it: 2026-11-27T03:34:00.123456Z (an offset is accepted too).
LANDING_TIMESTAMP_PATTERN = "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS]XXX"
LANDING_KEY = r"(raw/[^/]+/ingest_date=[^/]+/run_id=[^/]+/[^/]+)$"
_PATH_IN_ERROR = re.compile(r"((?:file:|s3a?://)\S*?\.jsonl\.gz)")
# A landing line the JSON reader refused (`read_landing_pages(..., permissive=True)`), as text; null for the others.
REFUSED_LINE = "_refused_line"


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
    spark: SparkSession,
    lake_root: str,
    keys: tuple[str, ...],
    scheme: str,
    records: bool = True,
    permissive: bool = False,
) -> DataFrame:
    """The pages of the given landing parts (I/O), plus `landing_path`; FAILFAST on anything unreadable.

    `records=False` reads the pages without their records (`LANDING_HEAD_SCHEMA`): the JSON parser skips
    `data`, which is most of a page; what a fingerprinted landing's classification needs.
    `permissive=True`: a line the JSON reader refuses (not JSON, a wrong type in the head, or valid JSON beyond
    `JSON_READ_LIMITS`) does not fail the read: it is a row of nulls whose `REFUSED_LINE` holds the line's text
    (`landing_pages` replaces it, or fails the run). A truncated gzip or a missing file still fails the read.
    """
    paths = [spark_path(lake_root, key, scheme) for key in keys]
    schema = LANDING_PAGE_SCHEMA if records else LANDING_HEAD_SCHEMA
    reader = spark.read.options(**JSON_READ_LIMITS)
    if permissive:
        schema = T.StructType([*schema.fields, T.StructField(REFUSED_LINE, T.StringType(), True)])
        reader = reader.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", REFUSED_LINE)
    else:
        reader = reader.option("mode", "FAILFAST")
    pages = reader.schema(schema).json(paths)
    return pages.select("*", F.col("_metadata.file_path").alias("landing_path"))


def landing_pages(
    spark: SparkSession,
    lake_root: str,
    keys: tuple[str, ...],
    scheme: str,
    records: bool = True,
    split: Optional[SplitPages] = None,
) -> DataFrame:
    """The pages of the given parts, read permissively (`REFUSED_LINE` counts the refused lines: `refused_lines`);
    with `split` (those lines split on the driver), each refused line is replaced by its page from `split`."""
    pages = read_landing_pages(spark, lake_root, keys, scheme, records=records, permissive=True)
    if split is None:
        return pages
    readable = pages.where(F.col(REFUSED_LINE).isNull())
    return readable.unionByName(split.frame(spark, keys, records))


def refused_lines() -> Column:
    """The lines the reader refused among pages read by `landing_pages` (an aggregate, for `observe`)."""
    return F.sum(F.when(F.col(REFUSED_LINE).isNotNull(), 1).otherwise(0)).alias("refused_lines")


_SPLIT_SCHEMA = T.StructType(
    [
        *LANDING_PAGE_SCHEMA.fields,
        T.StructField("landing_path", T.StringType(), True),
        T.StructField(REFUSED_LINE, T.StringType(), True),
    ]
)


@dataclass(frozen=True)
class SplitPages:
    """Landing lines the JSON reader refused but that are valid JSON, split on the driver (`split_refused_lines`):
    each page's head values and its records' exact text (`LANDING_PAGE_SCHEMA`), with its `landing_path`."""

    rows: tuple[tuple[Any, ...], ...] = ()

    def frame(self, spark: SparkSession, keys: tuple[str, ...], records: bool = True) -> DataFrame:
        """The pages of the given parts, shaped as `landing_pages` reads them (`REFUSED_LINE` null)."""
        wanted = set(keys)
        rows = [row for row in self.rows if landing_key(row[-1]) in wanted]
        frame = spark.createDataFrame([(*row, None) for row in rows], _SPLIT_SCHEMA)
        return frame if records else frame.drop("data")


def landing_key(path: str) -> Optional[str]:
    """The landing key (raw/...) of a file's path as Spark names it."""
    match = re.search(LANDING_KEY, path)
    return match.group(1) if match else None


def split_refused_lines(
    spark: SparkSession, lake_root: str, keys: tuple[str, ...], scheme: str, run_id: str
) -> SplitPages:
    """The lines of the given parts that the JSON reader refused, each split into its page by `split_page` (driver:
    rare, and each a page at most `api.max_response_bytes` long). A line that is not JSON fails the run, named."""
    pages = read_landing_pages(spark, lake_root, keys, scheme, permissive=True)
    # Spark refuses a query of the corrupt-record column alone: `page_index` goes along.
    refused = pages.where(F.col(REFUSED_LINE).isNotNull()).select("page_index", "landing_path", REFUSED_LINE)
    rows = []
    for row in refused.collect():
        try:
            rows.append((*split_page(row[REFUSED_LINE]), row["landing_path"]))
        except ValueError as exc:
            raise LandingReadError(
                f"run {run_id}: landing file {row['landing_path']} cannot be read "
                f"(Malformed records are detected: {exc}); nothing of the run was loaded"
            ) from None
    return SplitPages(tuple(rows))


_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}


def _int(value: Any, type_name: str, what: str) -> Optional[int]:
    low, high = _INT_RANGE[type_name]
    if value is None or (type(value) is int and low <= value <= high):
        return value
    raise ValueError(f"{what} is not an integer of the landing schema")


def _text(value: Any, what: str) -> Optional[str]:
    if value is None or type(value) is str:
        return value
    raise ValueError(f"{what} is not text")


def split_page(line: str) -> tuple[Any, ...]:
    """A landing line → its page's values in `LANDING_PAGE_SCHEMA` order, each record as its exact text.

    For a line the JSON reader refused: nothing is rewritten, the page's records are only cut apart (one holding
    a number beyond `JSON_READ_LIMITS` is then refused by validation alone). ValueError when the line is not
    JSON, or its head does not have the landing schema's types (what the reader would have refused anyway).
    """
    doc = dict(jsonsafe.members(line))  # a repeated key: the last one, as Spark's reader keeps it
    head = {
        name: jsonsafe.loads(doc[name]) for name in ("entity", "run_id", "extracted_at", "page_index") if name in doc
    }
    parent = jsonsafe.loads(doc["parent"]) if "parent" in doc else None
    if parent is not None and not isinstance(parent, dict):
        raise ValueError("parent is not an object")
    prints = jsonsafe.loads(doc["fingerprints"]) if "fingerprints" in doc else None
    if prints is not None and not isinstance(prints, list):
        raise ValueError("fingerprints is not an array")
    data = jsonsafe.items(doc["data"]) if "data" in doc and doc["data"] != "null" else None
    return (
        _text(head.get("entity"), "entity"),
        _text(head.get("run_id"), "run_id"),
        _text(head.get("extracted_at"), "extracted_at"),
        _int(head.get("page_index"), "int", "page_index"),
        None if parent is None else (_int(parent.get("apprenticeship_id"), "bigint", "parent.apprenticeship_id"),),
        None if prints is None else [_int(value, "bigint", "a fingerprint") for value in prints],
        None if data is None else [_record_text(text) for text in data],
    )


def _record_text(text: str) -> Optional[str]:
    """A record of `data` as the reader gives it in an array of strings: a JSON string's value, else its JSON text."""
    if text == "null":
        return None
    if text.startswith('"'):
        value = jsonsafe.loads(text)
        return value.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate: "?", as Spark reads it
    return text


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
    """The first landing part that fails to read on its own or holds a line that is not JSON (failure path only:
    Spark does not always name the file)."""
    for key in keys:
        try:
            # A line only the reader refuses (valid JSON beyond its limits) does not make a part unreadable.
            split_refused_lines(spark, lake_root, (key,), scheme, "")
        except LandingReadError:  # a line that is not JSON
            return key
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
