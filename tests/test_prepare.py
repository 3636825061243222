"""Preparing a run's changed records: a version landed twice in one run (a list that shifted while it was paged)
reaches bronze once, and quarantine once when it is bad, as its latest occurrence; in a first load and after."""

import datetime as dt

from pyspark.sql import functions as F

from conftest import make_config
from multiverse_etl.lake import Lake
from multiverse_etl.storage import open_storage
from multiverse_etl.transform import run_transform
from multiverse_etl.transform.tables import read_table
from support.landed import T0, Page, apprenticeship, programme, write_run

DAY = dt.timedelta(days=1)
BAD = {"modified_date": "not a date"}


def _occurrences(spark, lake, table, where=""):
    """(record id, page index, run id) of each row, sorted."""
    frame = read_table(spark, lake, table)
    if where:
        frame = frame.where(where)
    ids = F.get_json_object("raw_record", "$.id").cast("int")
    return sorted(tuple(row) for row in frame.select(ids, "page_index", "run_id").collect())


def test_a_version_landed_twice_in_one_run_reaches_bronze_and_quarantine_once_as_its_latest_occurrence(spark, tmp_path):
    storage = open_storage(str(tmp_path))
    first = write_run(  # a first load: 2 (good) and 3 (bad) each on both pages
        storage,
        T0,
        programmes=[Page([programme(7)])],
        apprenticeships=[
            Page([apprenticeship(1), apprenticeship(2), apprenticeship(3, **BAD)]),
            Page([apprenticeship(2), apprenticeship(3, **BAD)]),
        ],
        fingerprints=True,
    )
    changed = {"name": "renamed", "modified_date": "2024-04-01T00:00:00"}
    second = write_run(  # an incremental run: 1 changed, on both pages; 4 new and bad, on both pages
        storage,
        T0 + DAY,
        programmes=[Page([programme(7)])],
        apprenticeships=[
            Page([apprenticeship(1, **changed), apprenticeship(2), apprenticeship(3, **BAD), apprenticeship(4, **BAD)]),
            Page([apprenticeship(1, **changed), apprenticeship(4, **BAD)]),
        ],
        fingerprints=True,
    )
    result = run_transform(spark, make_config(str(tmp_path)))  # raises when a run does not reconcile
    assert [r.run_id for r in result.runs] == [first.run_id, second.run_id]
    lake = Lake.at(str(tmp_path))

    assert _occurrences(spark, lake, "bronze/apprenticeships") == [
        (1, 0, first.run_id),
        (1, 1, second.run_id),  # the changed version, its later occurrence
        (2, 1, first.run_id),  # landed twice: the later page's occurrence, once
        (3, 1, first.run_id),
        (4, 1, second.run_id),
    ]
    assert _occurrences(spark, lake, "silver/quarantine", "entity = 'apprenticeships'") == [
        (3, 1, first.run_id),  # known bad in the second run: not written again
        (4, 1, second.run_id),
    ]
    silver = read_table(spark, lake, "silver/apprenticeships").where(~F.col("is_deleted"))
    assert sorted((r.apprenticeship_id, r.name) for r in silver.collect()) == [
        (1, "renamed"),
        (2, "Data Fellowship – Acme 2"),
    ]


def test_a_first_load_reads_each_landing_part_once_and_a_later_run_again_only_the_parts_with_a_change(
    spark, tmp_path, monkeypatch
):
    from multiverse_etl.transform import prepare, read

    reads: list[tuple[str, bool]] = []  # (part, whole: with its records' text)
    real = read.read_landing_pages

    def recorded(spark_, root, keys, scheme, records=True, permissive=False):
        reads.extend((key, records) for key in keys)
        return real(spark_, root, keys, scheme, records=records, permissive=permissive)

    monkeypatch.setattr(read, "read_landing_pages", recorded)  # what `landing_pages` calls
    monkeypatch.setattr(prepare, "read_landing_pages", recorded)
    scans: list[int] = []  # landing scans in the physical plan of each frame the step holds
    real_hold = prepare.hold

    def counted_hold(frame):
        scans.append(frame._jdf.queryExecution().executedPlan().toString().count("FileScan json"))
        return real_hold(frame)

    monkeypatch.setattr(prepare, "hold", counted_hold)
    storage, config = open_storage(str(tmp_path)), make_config(str(tmp_path))
    pages = [Page([apprenticeship(1), apprenticeship(2)]), Page([apprenticeship(3)])]
    first = write_run(
        storage, T0, programmes=[Page([programme(7)])], apprenticeships=pages, pages_per_part=1, fingerprints=True
    )
    run_transform(spark, config)
    # Nothing to classify against: each part read once, whole (classification, bronze and validation from that read).
    assert sorted(reads) == sorted((key, True) for keys in first.keys.values() for key in keys)

    reads.clear()
    pages[1] = Page([apprenticeship(3, name="renamed", modified_date="2024-04-01T00:00:00")])
    second = write_run(
        storage,
        T0 + DAY,
        programmes=[Page([programme(7)])],
        apprenticeships=pages,
        pages_per_part=1,
        fingerprints=True,
    )
    result = run_transform(spark, config)
    assert [c.updated for c in result.runs[0].entities if c.entity == "apprenticeships"] == [1]
    # Classified from the fingerprints alone (programmes, landed exactly as before, are not read at all); read
    # whole again: only the part holding the changed record.
    parts = second.keys["apprenticeships"]
    assert sorted(reads) == sorted([(parts[0], False), (parts[1], False), (parts[1], True)])
    # ... and scanned once by each held frame's plan: the ranking (changed records and, through the revisits, their
    # valid keys) reads the validated rows held, not the landing again.
    assert scans and max(scans) == 1, scans
