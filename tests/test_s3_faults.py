"""S3 faults survived: the fault proxy (lib/multiverse_etl/devtools/s3_faults.py) in front of the local S3 endpoint.

Fast tests of the proxy itself and of the lake lock behind it (boto3 retries a write whose answer was lost; the
retry of a conditional write then answers 412), then the pipeline on a lake reached only through the proxy.
"""

from __future__ import annotations

import dataclasses
import time
import uuid

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, ConnectionClosedError

from conftest import make_config
from multiverse_etl.devtools.s3_faults import (
    DELTA_COMMIT_ANSWER_LOST,
    QUICK_S3A_RETRIES,
    FaultPlan,
    S3FaultProxy,
    pipeline_plan,
    request_type,
)
from multiverse_etl.lock import LOCK_KEY, acquire, read_lock
from multiverse_etl.storage import open_storage


@pytest.fixture
def proxy(local_s3):
    """A proxy with no random faults (tests script the ones they want)."""
    with S3FaultProxy(local_s3.endpoint_url, FaultPlan(rate=0.0)) as running:
        yield running


def client(endpoint_url: str, attempts: int = 1):
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=BotoConfig(
            retries={"total_max_attempts": attempts, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
        ),
    )


def test_request_types():
    assert request_type("PUT", "/b/k/x.json", "", {}) == "put"
    assert request_type("PUT", "/b/k", "", {"x-amz-copy-source": "/b/j"}) == "copy"
    assert request_type("PUT", "/b/k", "partNumber=1&uploadId=u", {}) == "multipart"
    assert request_type("POST", "/b/k", "uploads", {}) == "multipart"
    assert request_type("GET", "/b/k", "", {}) == "get"
    assert request_type("GET", "/b", "list-type=2&prefix=k/", {}) == "list"
    assert request_type("GET", "/b/", "list-type=2&prefix=k/&delimiter=/", {}) == "list"
    assert request_type("GET", "/b", "location", {}) == "other"
    assert request_type("HEAD", "/b/k", "", {}) == "head"
    assert request_type("DELETE", "/b/k", "", {}) == "delete"
    assert request_type("POST", "/b", "delete", {}) == "delete"


def test_the_proxy_forwards_everything_as_received(local_s3, proxy):
    s3 = client(proxy.endpoint_url)
    key = f"proxy-{uuid.uuid4().hex}"
    s3.put_object(Bucket=local_s3.bucket, Key=key, Body=b"hello", ServerSideEncryption="AES256")
    assert s3.head_object(Bucket=local_s3.bucket, Key=key)["ContentLength"] == 5
    assert s3.get_object(Bucket=local_s3.bucket, Key=key, Range="bytes=1-3")["Body"].read() == b"ell"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=local_s3.bucket, Prefix=key)["Contents"]] == [key]
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=local_s3.bucket, Key=key, Body=b"again", IfNoneMatch="*")
    s3.delete_object(Bucket=local_s3.bucket, Key=key)
    with pytest.raises(ClientError, match="404"):
        s3.head_object(Bucket=local_s3.bucket, Key=key)
    assert proxy.injected_by() == 0
    assert {t for (_, t) in proxy.requests} == {"put", "head", "get", "list", "delete"}


def test_each_fault_kind_as_a_client_sees_it(local_s3):
    script = {"boto3/put": ["slowdown", "reset", "reset_after", "slow"], "boto3/get": ["reset"]}
    with S3FaultProxy(local_s3.endpoint_url, FaultPlan(rate=0.0, slow_s=0.2, script=script)) as proxy:
        s3 = client(proxy.endpoint_url)
        key = f"kinds-{uuid.uuid4().hex}"
        with pytest.raises(ClientError, match="SlowDown"):
            s3.put_object(Bucket=local_s3.bucket, Key=key, Body=b"1")
        with pytest.raises(ConnectionClosedError):
            s3.put_object(Bucket=local_s3.bucket, Key=key, Body=b"2")
        assert not client(local_s3.endpoint_url).list_objects_v2(Bucket=local_s3.bucket, Prefix=key).get("Contents")
        with pytest.raises(ConnectionClosedError):  # forwarded, then the answer lost: the object is written
            s3.put_object(Bucket=local_s3.bucket, Key=key, Body=b"3")
        assert client(local_s3.endpoint_url).get_object(Bucket=local_s3.bucket, Key=key)["Body"].read() == b"3"
        started = time.monotonic()
        s3.put_object(Bucket=local_s3.bucket, Key=key, Body=b"4")
        assert time.monotonic() - started >= 0.2
        with pytest.raises(ConnectionClosedError):
            s3.get_object(Bucket=local_s3.bucket, Key=key)
        assert s3.get_object(Bucket=local_s3.bucket, Key=key)["Body"].read() == b"4"
        assert proxy.injected == {
            ("boto3", "put", "slowdown"): 1,
            ("boto3", "put", "reset"): 1,
            ("boto3", "put", "reset_after"): 1,
            ("boto3", "put", "slow"): 1,
            ("boto3", "get", "reset"): 1,
        }


def test_faults_are_injected_by_type_at_the_configured_rate_and_seeded(local_s3):
    plan = FaultPlan(rate=0.0, rates={"put": 0.25, "head": 0.0}, kinds=("slowdown",), seed=3)
    counts = []
    for _ in range(2):
        with S3FaultProxy(local_s3.endpoint_url, plan) as proxy:
            s3 = client(proxy.endpoint_url)
            for i in range(200):
                try:
                    s3.put_object(Bucket=local_s3.bucket, Key=f"rate/{i}", Body=b"x")
                except ClientError:
                    pass
                s3.head_object(Bucket=local_s3.bucket, Key="rate/0") if i == 0 else None
            counts.append(dict(proxy.injected))
    assert counts[0] == counts[1]  # the same seed, the same faults
    assert 30 <= counts[0][("boto3", "put", "slowdown")] <= 70
    assert ("boto3", "head", "slowdown") not in counts[0]


def test_a_fault_on_a_path_hits_the_first_request_to_such_a_path_wherever_it_comes_in_its_stream():
    """Spark writes side by side, so a Delta commit's position among S3A's PUTs varies: the plan names it by path."""
    plan = FaultPlan(rate=0.0, script={"s3a/put": [None, "slowdown"]}, first_on_path=DELTA_COMMIT_ANSWER_LOST)
    proxy = S3FaultProxy("http://127.0.0.1:1", plan)  # decide() only: never started
    table = "/multiverse-lake/lake/silver/projects"
    puts = [
        f"{table}/part-00000-1.snappy.parquet",
        f"{table}/_delta_log/00000000000000000000.crc",
        f"{table}/_delta_log/00000000000000000000.json",
        f"{table}/_delta_log/00000000000000000001.json",
    ]
    assert [proxy.decide("s3a", "put", path) for path in puts] == [None, "slowdown", "reset_after", None]
    assert "no Delta commit's answer lost" not in proxy.missing()
    again = S3FaultProxy("http://127.0.0.1:1", pipeline_plan())
    assert again.decide("s3a", "put", f"{table}/_delta_log/00000000000000000007.json") == "reset_after"


def test_the_lake_lock_survives_a_lost_answer_to_its_conditional_create(local_s3):
    """The hard case: If-None-Match went through, its answer was lost, boto3's retry answers 412 — it is ours."""
    script = {"lock/put": ["reset_after", "reset_after"], "lock/get": ["slowdown"], "lock/delete": ["reset_after"]}
    with S3FaultProxy(local_s3.endpoint_url, FaultPlan(rate=0.0, script=script)) as proxy:
        config = make_config(
            f"s3://{local_s3.bucket}/lock-faults-{uuid.uuid4().hex[:8]}",
            env="local-s3",
            s3={"endpoint_url": proxy.endpoint_url},
        )
        storage = open_storage(config.lake.root, config.s3)
        held = acquire(storage, "faulted writer")
        assert read_lock(storage)["token"] == held.token
        assert held.renew()
        held.release()
        assert read_lock(storage) is None
        assert not storage.exists(LOCK_KEY)
        assert held.lost == "released"
        assert proxy.injected_by("lock", "reset_after", "put") == 2
        assert proxy.injected_by("lock", "reset_after", "delete") == 1


def test_the_boto3_client_retries_slowdowns_and_resets_of_every_call(local_s3):
    kinds = {"put": "reset_after", "get": "reset", "head": "slowdown", "list": "reset", "delete": "reset_after"}
    script = {f"boto3/{t}": [kind] for t, kind in kinds.items()}
    with S3FaultProxy(local_s3.endpoint_url, FaultPlan(rate=0.0, script=script)) as proxy:
        s3 = dataclasses.replace(make_config("unused", env="local-s3").s3, endpoint_url=proxy.endpoint_url)
        storage = open_storage(f"s3://{local_s3.bucket}/boto3-faults-{uuid.uuid4().hex[:8]}", s3)
        storage.put("a/b.json", b"{}")
        assert storage.get("a/b.json") == b"{}"
        assert storage.exists("a/b.json")
        assert [o.key for o in storage.list("a/")] == ["a/b.json"]
        storage.delete("a/b.json")
        assert not storage.exists("a/b.json")
        assert {t for (_, t, _) in proxy.injected} == {"put", "get", "head", "list", "delete"}


# ---------------------------------------------------------------- the pipeline behind the proxy

SCALE, SEED, CORRUPT = 80, 11, 0.04
API = {"page_size": 50, "concurrency": 8, "backoff_base_s": 0.01, "backoff_max_s": 0.2, "max_attempts": 12}


@pytest.mark.slow
def test_the_pipeline_survives_s3_faults_and_the_lake_equals_the_ground_truth(spark, local_s3):
    """Landing, lock, Delta commits through S3A and the reads back, all through the proxy, a few % of them faulted."""
    from multiverse_etl.pipeline import run_pipeline
    from multiverse_etl.spark import use_s3a_bucket
    from sample_api.dump import ground_truth
    from sample_api.server import serve_in_background
    from support.lake import assert_lake_matches
    from support.oracle import reference_lake

    bucket = f"faults-{uuid.uuid4().hex[:8]}"  # S3A settings are per bucket: a new one for the proxy's endpoint
    client(local_s3.endpoint_url).create_bucket(Bucket=bucket)
    with S3FaultProxy(local_s3.endpoint_url, pipeline_plan()) as proxy:
        s3 = {"endpoint_url": proxy.endpoint_url, **QUICK_S3A_RETRIES}
        with serve_in_background(scale=SCALE, seed=SEED, generation=0, corrupt_rate=CORRUPT) as api:
            config = make_config(f"s3://{bucket}/lake", env="local-s3", s3=s3, api={"url": api.url, **API})
            use_s3a_bucket(spark, config, bucket)
            result = run_pipeline(config, lambda: spark, mode="full")
        assert result.transform.loaded_run_ids == [result.extract.run_id]
        assert_lake_matches(spark, config, reference_lake(ground_truth(SCALE, SEED, 0, CORRUPT)))
        print(proxy.describe())
    assert proxy.missing() == []
    assert proxy.injected_by("boto3", type_="put") >= 4  # landing writes
    assert proxy.injected_by("lock", type_="put") >= 4  # lock writes
    assert proxy.injected_by("s3a") >= 20  # Delta's commits, data files and reads through S3A
