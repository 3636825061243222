"""Held frames: computed once, and not moved by a later write to the Delta table they were read from."""

from __future__ import annotations

import pytest

from multiverse_etl.transform.frames import hold, release


def test_a_held_frame_keeps_its_rows_after_its_table_is_written_and_is_freed_by_release(spark, tmp_path):
    path = str(tmp_path / "numbers")
    spark.range(10).write.format("delta").save(path)
    held = hold(spark.read.format("delta").load(path).where("id % 2 = 0"))
    spark.range(10, 20).write.format("delta").mode("append").save(path)
    assert sorted(row.id for row in held.collect()) == [0, 2, 4, 6, 8]  # what it was computed from
    release(held)
    with pytest.raises(Exception, match="(?i)checkpoint|block"):  # its blocks are gone: it must not be used
        held.count()


def test_a_persisted_frame_is_computed_again_from_its_table_after_a_write(spark, tmp_path):
    """Why the transform holds its classification instead of persisting it (Spark re-caches by path)."""
    path = str(tmp_path / "numbers")
    spark.range(10).write.format("delta").save(path)
    persisted = spark.read.format("delta").load(path).where("id % 2 = 0").persist()
    try:
        assert persisted.count() == 5
        spark.range(10, 20).write.format("delta").mode("append").save(path)
        assert persisted.count() == 10  # the rows the write added are in it now
    finally:
        release(persisted)
