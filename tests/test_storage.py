"""The storage interface behaves the same on a folder and on a real local S3 endpoint."""

import pytest

from multiverse_etl.s3_storage import S3Storage
from multiverse_etl.storage import ObjectNotFound, open_storage, spark_path


def test_put_get_list_delete_round_trip(storage):
    storage.put("raw/a/part-00001.jsonl.gz", b"one")
    storage.put("raw/a/part-00000.jsonl.gz", b"zero!")
    storage.put("raw/b/x.json", b"{}")
    assert storage.get("raw/a/part-00000.jsonl.gz") == b"zero!"
    assert [(o.key, o.size) for o in storage.list("raw/a/")] == [
        ("raw/a/part-00000.jsonl.gz", 5),
        ("raw/a/part-00001.jsonl.gz", 3),
    ]
    assert storage.exists("raw/b/x.json") and not storage.exists("raw/b/y.json")
    storage.delete("raw/b/x.json")
    assert not storage.exists("raw/b/x.json")
    with pytest.raises(ObjectNotFound, match="x.json does not exist"):
        storage.get("raw/b/x.json")


def test_put_if_absent_is_a_lock(storage):
    assert storage.put_if_absent("_locks/pipeline.lock", b"first") is True
    assert storage.put_if_absent("_locks/pipeline.lock", b"second") is False
    assert storage.get("_locks/pipeline.lock") == b"first"


def test_overwrite_replaces_whole_object(storage):
    storage.put("_state/watermark.json", b"old-and-long")
    storage.put("_state/watermark.json", b"new")
    assert storage.get("_state/watermark.json") == b"new"


def test_s3_writes_carry_server_side_encryption(s3_config):
    storage = open_storage(f"{s3_config.lake.root}/sse", s3_config.s3)
    assert isinstance(storage, S3Storage)
    storage.put("raw/x.json", b"{}")
    storage.put("raw/big.bin", b"\0" * (17 * 1024 * 1024))  # over the multipart threshold
    storage.put_if_absent("raw/lock", b"1")
    for key in ("raw/x.json", "raw/big.bin", "raw/lock"):
        head = storage.client.head_object(Bucket=storage.bucket, Key=storage._key(key))
        assert head["ServerSideEncryption"] == "AES256", key


def test_spark_path_maps_s3_to_the_configured_scheme():
    assert spark_path("s3://b/p", "silver/x") == "s3a://b/p/silver/x"
    assert spark_path("s3://b/p", "silver/x", "s3") == "s3://b/p/silver/x"
    assert spark_path("/data/lake", "silver/x") == "/data/lake/silver/x"


def test_a_folders_conditional_writes_never_interleave_and_leave_no_guard_file_behind(tmp_path):
    """Many writers incrementing one counter by read, then replace-if-unchanged: no increment is lost (each
    replace is guarded), and the guard's flock file is gone once no one holds it."""
    import concurrent.futures
    from pathlib import Path

    from multiverse_etl.storage import LocalStorage, guard_path

    storage = LocalStorage(str(tmp_path / "lake"))
    storage.put("_locks/counter", b"0")
    guard = guard_path(Path(storage.uri("_locks/counter")).parent)

    def add_one(_: int) -> int:
        attempts = 0
        while True:
            attempts += 1
            current = storage.get_versioned("_locks/counter")
            if storage.put_if_version("_locks/counter", str(int(current.data) + 1).encode(), current.version):
                return attempts

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        attempts = list(pool.map(add_one, range(200)))
    assert storage.get("_locks/counter") == b"200"
    assert not guard.exists()
    version = storage.get_versioned("_locks/counter").version
    assert storage.delete_if_version("_locks/counter", version) and not storage.exists("_locks/counter")
    assert not guard.exists()
    assert sum(attempts) >= 200
