"""One lake reader: the tables of a lake read back into plain Python, and compared with the oracle.

`compare_lake`: bronze holds every served record version exactly once (the run compared: only versions it served); silver holds, live, exactly the records
that meet the contract, cleaned, one row per key; `silver/quarantine` exactly the records that break it, each with
every reason; both gold tables exactly the joins of those silver rows.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from multiverse_etl.config import Config

from .oracle import ENTITIES, TS, Reference, _month, canonical, reference_gold

# ---------------------------------------------------------------- reading the lake

# Every column of the gold tables, in table order, keys first: `read_lake` reads all of them (and `compare_lake`
# fails on any other column), so gold is compared whole, as the oracle's key + value tuples.
GOLD_COLUMNS = {
    "gold/apprenticeships": (
        "apprenticeship_id",
        "name",
        "programme_id",
        "modified_date",
        "first_name",
        "last_name",
        "email_address",
        "email_is_valid",
        "programme_name",
        "programme_duration",
        "programme_known",
        "projects_total",
        "projects_pending",
        "projects_submitted",
        "projects_graded",
        "has_projects",
        "modified_month",
    ),
    "gold/apprenticeship_projects": (
        "project_id",
        "apprenticeship_id",
        "title",
        "description",
        "status",
        "apprenticeship_known",
        "apprenticeship_name",
        "first_name",
        "last_name",
        "email_address",
        "email_is_valid",
        "modified_date",
        "programme_id",
        "programme_known",
        "programme_name",
        "programme_duration",
        "programme_description",
        "modified_month",
    ),
}


def _lake(config: Config):
    from multiverse_etl.lake import Lake

    return Lake.of(config)


def read_lake(spark, config: Config, run_id: Optional[str] = None) -> dict[str, Any]:
    """What the comparison needs from the lake, collected (fine up to ~100k rows)."""

    from multiverse_etl.transform.tables import read_table

    lake = _lake(config)
    state: dict[str, Any] = {"bronze": {}, "silver": _read_silver(spark, lake)}
    for entity in ENTITIES:  # every run's rows, with their run: each version must be in bronze once, whichever run
        bronze = read_table(spark, lake, f"bronze/{entity}")
        state["bronze"][entity] = [
            (r.raw_record, r.parent_apprenticeship_id, r.run_id)
            for r in bronze.select("raw_record", "parent_apprenticeship_id", "run_id").collect()
        ]
    state["quarantine"] = {entity: [] for entity in ENTITIES}  # one read of the table, its rows split by entity
    quarantine = read_table(spark, lake, "silver/quarantine")
    for r in quarantine.select("entity", "raw_record", "parent_apprenticeship_id", "reasons", "run_id").collect():
        if r.entity in state["quarantine"]:
            state["quarantine"][r.entity].append((r.raw_record, r.parent_apprenticeship_id, tuple(r.reasons), r.run_id))
    state.update(_read_gold(spark, lake))
    return state


def _read_silver(spark, lake) -> dict[str, list[tuple]]:
    """Live silver rows per entity: (key, business values, modified_month or None)."""
    from pyspark.sql import functions as F

    from multiverse_etl.transform.tables import read_table

    silver: dict[str, list[tuple]] = {}
    a = read_table(spark, lake, "silver/apprenticeships").where(~F.col("is_deleted"))
    silver["apprenticeships"] = [
        (
            (r.apprenticeship_id,),
            (r.name, r.programme_id, r.modified_date, r.first_name, r.last_name, r.email_address, r.email_is_valid),
            r.modified_month,
        )
        for r in a.withColumn("modified_date", F.date_format("modified_date", TS)).collect()
    ]
    p = read_table(spark, lake, "silver/projects").where(~F.col("is_deleted"))
    silver["projects"] = [
        ((r.apprenticeship_id, r.project_id), (r.title, r.description, r.status), None) for r in p.collect()
    ]
    g = read_table(spark, lake, "silver/programmes").where(~F.col("is_deleted"))
    silver["programmes"] = [((r.programme_id,), (r.name, r.duration, r.description), None) for r in g.collect()]
    return silver


def _read_gold(spark, lake) -> dict[str, Any]:
    """Both gold tables whole (`GOLD_COLUMNS`) as (key, values) rows, and the columns each table has."""
    from pyspark.sql import functions as F

    from multiverse_etl.transform.tables import read_table

    state: dict[str, Any] = {"gold_columns": {}}
    for table, name, key_columns in (
        ("gold/apprenticeships", "gold_apprenticeships", 1),
        ("gold/apprenticeship_projects", "gold_projects", 2),
    ):
        gold = read_table(spark, lake, table)
        state["gold_columns"][table] = tuple(gold.columns)
        rows = gold.withColumn("modified_date", F.date_format("modified_date", TS)).select(*GOLD_COLUMNS[table])
        state[name] = [(tuple(r[:key_columns]), tuple(r[key_columns:])) for r in rows.collect()]
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
    gold_rows: dict[str, int] = field(default_factory=dict)  # rows read from each gold table (its count)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self, limit: int = 12) -> str:
        return "\n".join(self.problems[:limit]) + (
            f"\n... {len(self.problems) - limit} more" if len(self.problems) > limit else ""
        )


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


def _diff_versions(name: str, want: Counter, everywhere: Counter, of_run: Counter, out: Comparison) -> tuple[int, int]:
    """Each version the source served is held once (in any run's rows), and a run's rows hold only what it served.

    `everywhere`: every run's rows; `of_run`: the rows of the run compared (all of them when no run is named).
    """
    missing = [version for version in want if version not in everywhere]
    twice = [version for version, n in everywhere.items() if n > 1]
    extra = [version for version in of_run if version not in want]
    m, e = len(missing), sum(everywhere[v] - 1 for v in twice) + len(extra)
    out.missing += m
    out.duplicated += e
    if missing:
        out.problems.append(f"{name}: {m} version(s) missing, e.g. {str(missing[0])[:200]}")
    if twice:
        out.problems.append(f"{name}: {len(twice)} version(s) held more than once, e.g. {str(twice[0])[:200]}")
    if extra:
        out.problems.append(f"{name}: {len(extra)} version(s) the run did not serve, e.g. {str(extra[0])[:200]}")
    return m, e


def compare_lake(
    spark,
    config: Config,
    reference: Reference,
    run_id: Optional[str] = None,
    check_bronze: bool = True,
    check_quarantine: bool = True,
) -> Comparison:
    """The lake's bronze (of `run_id`), silver, quarantine (of `run_id`) and gold against `reference`.

    `check_bronze`/`check_quarantine` False: after an incremental run, whose bronze and quarantine hold only what it
    landed, while silver and gold must still be the whole reference."""
    state = read_lake(spark, config, run_id)
    out = Comparison()
    for entity in ENTITIES:
        stats = out.by_entity.setdefault(entity, {})
        stats["expected"] = reference.expected_records(entity)
        out.expected += stats["expected"]
        if check_bronze:
            bronze = [
                (canonical(json.loads(raw), parent if entity == "projects" else None), run)
                for raw, parent, run in state["bronze"][entity]
            ]
            stats["bronze_missing"], stats["bronze_duplicated"] = _diff_versions(
                f"bronze/{entity}",
                reference.served[entity],
                Counter(v for v, _ in bronze),
                Counter(v for v, run in bronze if run_id is None or run == run_id),
                out,
            )
        silver_rows = state["silver"][entity]
        _diff_map(
            f"silver/{entity}", reference.silver[entity], silver_rows, out, check_month=entity == "apprenticeships"
        )
        rows = [
            ((canonical(json.loads(raw), parent if entity == "projects" else None), reasons), run)
            for raw, parent, reasons, run in state["quarantine"][entity]
        ]
        quarantined = Counter(v for v, run in rows if run_id is None or run == run_id)
        if check_quarantine:
            _diff_versions(
                f"silver/quarantine {entity}",
                reference.quarantine[entity],
                Counter(v for v, _ in rows),
                quarantined,
                out,
            )
        stats["silver_live"] = len(silver_rows)
        stats["quarantined"] = sum(quarantined.values())
        out.quarantined += stats["quarantined"]
        out.in_lake += stats["silver_live"] + stats["quarantined"]
    _diff_gold(state, reference.gold_apprenticeships, reference.gold_projects, out)
    return out


def _diff_gold(state: dict[str, Any], want_apprenticeships: dict, want_projects: dict, out: Comparison) -> None:
    for table, columns in state["gold_columns"].items():
        if columns != GOLD_COLUMNS[table]:
            out.wrong += 1
            out.problems.append(f"{table}: columns {columns} are not the ones compared {GOLD_COLUMNS[table]}")
    out.gold_rows = {"gold/apprenticeships": len(state["gold_apprenticeships"])}
    out.gold_rows["gold/apprenticeship_projects"] = len(state["gold_projects"])
    _diff_map("gold/apprenticeships", want_apprenticeships, state["gold_apprenticeships"], out)
    _diff_map("gold/apprenticeship_projects", want_projects, state["gold_projects"], out)


def compare_gold_with_silver(spark, config: Config) -> Comparison:
    """Both gold tables against the oracle's joins (`reference_gold`, plain Python) of the lake's own live silver:
    whatever silver holds, gold must be exactly its joins, row for row and column for column."""
    lake = _lake(config)
    out = Comparison()
    silver: dict[str, dict[tuple, tuple]] = {}
    for entity, rows in _read_silver(spark, lake).items():
        silver[entity] = {key: value for key, value, _ in rows}
        if len(silver[entity]) != len(rows):
            out.duplicated += len(rows) - len(silver[entity])
            out.problems.append(f"silver/{entity}: {len(rows) - len(silver[entity])} live row(s) for a key held twice")
    want_apprenticeships, want_projects = reference_gold(silver)
    _diff_gold(_read_gold(spark, lake), want_apprenticeships, want_projects, out)
    return out


def assert_lake_matches(
    spark,
    config: Config,
    reference: Reference,
    run_id: Optional[str] = None,
    check_bronze: bool = True,
    check_quarantine: bool = True,
) -> Comparison:
    comparison = compare_lake(spark, config, reference, run_id, check_bronze, check_quarantine)
    assert comparison.ok, "the lake is not the ground truth:\n" + comparison.describe()
    return comparison


def row_counts(spark, config_or_lake, tables: Iterable[str], where: Optional[Any] = None) -> dict[str, int]:
    """The rows of each table (those matching `where`, when given), counted in one Spark job: each table's rows tagged
    with its name, unioned, counted per name (one job where a count() per table takes one each)."""
    from functools import reduce

    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from multiverse_etl.lake import Lake
    from multiverse_etl.transform.tables import read_table

    lake = config_or_lake if isinstance(config_or_lake, Lake) else _lake(config_or_lake)
    tables = list(tables)
    frames = []
    for table in tables:
        frame = read_table(spark, lake, table)
        frames.append((frame if where is None else frame.where(where)).select(F.lit(table).alias("table")))
    counted = reduce(DataFrame.unionByName, frames).groupBy("table").count().collect()
    return {table: 0 for table in tables} | {row["table"]: row["count"] for row in counted}


def count_objects(storage, prefix: str) -> int:
    return sum(1 for _ in storage.list(prefix))


def walk_files(root: Path) -> Iterable[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath, name)
