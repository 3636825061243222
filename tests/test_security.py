"""Security: no secret anywhere a run writes, TLS verified by default, every S3 object encrypted, pseudonymised gold.

The secrets of the shared faulted run (support.scenarios.faulted_pipeline_run): the API password,
every access token the API handed out (--token-ttl: many), and the S3 secret key of the driver's
client. "Everything a run wrote": every object under the lake prefix (gzip landing parts
decompressed, Delta logs, state, manifests), every string of every Delta table (bronze, silver,
quarantine, gold, audit rows, read with Spark), the run's logs at DEBUG, and the text of the
exceptions of failed runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import hashlib
import hmac
import ssl
import subprocess
import threading

import pytest

from conftest import make_config
from multiverse_etl.config import load_config
from multiverse_etl.extract import run_extract
from multiverse_etl.lake import Lake
from multiverse_etl.storage import open_storage
from multiverse_etl.transform.tables import TABLES, read_table
from sample_api.app import SampleAPI
from support.extract import PASSWORD, assert_matches_ground_truth, extract_config, start_api, storage_for
from support.log_capture import LogCapture
from support.processes import job_command, job_env
from support.tls import self_signed_certificate


@pytest.fixture(scope="module")
def run(faulted_run):
    return faulted_run


def secrets_of(run) -> list[str]:
    values = [PASSWORD, run.s3_secret, *run.api.issued]
    assert len(run.api.issued) > 3  # tokens expired and were replaced: there are many to look for
    return values


def lake_texts(spark, run) -> dict[str, str]:
    """Every object under the lake prefix as text, and every Delta table's rows as text."""
    storage = open_storage(run.config.lake.root, run.config.s3)
    texts: dict[str, str] = {}
    for info in storage.list(""):
        if info.key.endswith(".parquet") or info.key.endswith(".crc"):
            continue  # table contents are checked through Spark below (parquet pages are compressed)
        data = storage.get(info.key)
        texts[info.key] = (gzip.decompress(data) if info.key.endswith(".gz") else data).decode("utf-8", "replace")
    lake = Lake.of(run.config)
    for table in TABLES:
        frame = read_table(spark, lake, table)
        from pyspark.sql import functions as F

        rows = frame.select(F.to_json(F.struct(*frame.columns)).alias("row")).collect()
        texts[f"table {table}"] = "\n".join(r.row for r in rows)
    return texts


def test_no_secret_in_anything_the_run_wrote_or_logged(spark, run):
    texts = lake_texts(spark, run)
    assert any(k.endswith(".jsonl.gz") for k in texts) and any("_manifests" in k for k in texts)
    assert any("_delta_log" in k for k in texts) and texts["table _audit/runs"] and texts["table bronze/projects"]
    texts["logs"] = run.logs
    assert "DEBUG" in run.logs and "token" in run.logs.lower()  # the logs were captured at DEBUG, re-logins included
    leaks = [(name, secret[:4] + "…") for name, text in texts.items() for secret in secrets_of(run) if secret in text]
    assert leaks == []


def test_failed_runs_keep_secrets_out_of_their_messages_and_logs(tmp_path):
    server = start_api(scale=10, seed=81, token_ttl=3)
    wrong = "not-the-" + PASSWORD
    try:
        config = extract_config(str(tmp_path / "lake"), server.url)
        with LogCapture() as logs:
            bad_password = dataclasses.replace(config, api=dataclasses.replace(config.api, password=wrong))
            with pytest.raises(Exception) as refused:
                run_extract(bad_password)
            broken_url = dataclasses.replace(
                config,
                api=dataclasses.replace(
                    config.api, url=f"http://user:{wrong}@127.0.0.1:9", max_attempts=2, backoff_max_s=0.05
                ),
            )
            with pytest.raises(Exception) as unreachable:
                run_extract(broken_url)
    finally:
        server.stop()
    texts = {
        "wrong password: exception": str(refused.value) + repr(refused.value),
        "password in the URL: exception": str(unreachable.value) + repr(unreachable.value),
        "logs": logs.text,
    }
    assert "refused" in texts["wrong password: exception"] and "Invalid username or password" in str(refused.value)
    # Neither password appears anywhere: not the wrong one, nor one given in the URL's user:password@ part (which
    # the retry log lines and the RetryBudgetExhausted message, the job's ERROR line, show as "POST <url>").
    leaks = [
        f"{name}: {line.strip()[:160]}"
        for name, text in texts.items()
        for line in text.splitlines()
        for secret in (PASSWORD, wrong)
        if secret in line
    ]
    assert leaks == [], "\n".join(leaks)


@pytest.fixture
def api_requests(monkeypatch) -> list[tuple[str, str]]:
    """(method, path) of every request any sample API of this process answers, in order."""
    seen: list[tuple[str, str]] = []
    answer = SampleAPI.__call__

    async def recorded(self, scope, receive, send):
        if scope["type"] == "http":
            seen.append((scope["method"], scope["path"]))
        await answer(self, scope, receive, send)

    monkeypatch.setattr(SampleAPI, "__call__", recorded)
    return seen


def test_wrong_credentials_end_the_pipeline_at_once_with_one_clear_line(tmp_path, api_requests):
    server = start_api(scale=20, seed=82)
    lake = tmp_path / "lake"
    try:
        done = subprocess.run(
            job_command("pipeline", str(lake), "--api-url", server.url),
            capture_output=True,
            text=True,
            timeout=120,
            env=job_env(MV_API_PASSWORD="wrong-password-123"),
        )
    finally:
        server.stop()
    assert done.returncode == 1, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "refused" in errors[0] and "MV_API_PASSWORD" in errors[0], done.stderr[-2000:]
    # At once: one login, refused, is the only request besides the clock probe; no retry, no data request.
    assert [request for request in api_requests if request[0] != "HEAD"] == [("POST", "/login")], api_requests
    assert "spark" not in done.stderr.lower()  # no JVM was started for a run that cannot log in
    assert "Traceback" not in done.stderr and "wrong-password-123" not in done.stderr + done.stdout
    assert not (lake / "raw").exists() and not (lake / "_state").exists()
    written = [p for p in lake.rglob("*") if p.is_file()] if lake.exists() else []
    assert written == []  # nothing of the lake was touched: no landing, no state, no lock left behind


# ---------------------------------------------------------------- server-side encryption


def test_every_object_in_the_lake_carries_the_configured_encryption(run):
    storage = open_storage(run.config.lake.root, run.config.s3)
    keys = [info.key for info in storage.list("")]
    assert any(k.endswith(".parquet") for k in keys) and any(k.endswith(".jsonl.gz") for k in keys)
    assert any(k.startswith("_state/") for k in keys) and any(k.startswith("raw/_manifests/") for k in keys)
    missing = [
        k
        for k in keys
        if storage.client.head_object(Bucket=storage.bucket, Key=storage._key(k)).get("ServerSideEncryption")
        != run.config.s3.sse
    ]
    assert run.config.s3.sse == "AES256" and missing == []


def test_encryption_is_configured_for_every_shipped_environment_that_writes_to_s3():
    for env in ("local-s3", "emr", "glue"):
        config = load_config(env, environ={})
        assert config.s3.sse in ("AES256", "aws:kms"), env
    assert load_config("emr", environ={}).s3.sse == "aws:kms" and load_config("glue", environ={}).s3.sse == "aws:kms"


# ---------------------------------------------------------------- TLS


class TlsProxy:
    """HTTPS on 127.0.0.1 with a self-signed certificate, forwarding to the sample API (what a man in the middle offers)."""

    def __init__(self, upstream_port: int, cert_path, key_path) -> None:
        self.upstream_port = upstream_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_path, key_path)
        self.handshakes = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)
        self.url = f"https://127.0.0.1:{self.port}"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, ssl.SSLError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader, writer):
            self.handshakes += 1  # every connection is a TLS handshake attempt
            try:
                await writer.start_tls(self.context)
            except (ssl.SSLError, ConnectionError, OSError):
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        server = self.loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.server = server
        ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        """Close the server and end its open connections' tasks before the loop stops (none is left pending)."""

        async def shutdown() -> None:
            self.server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


def test_tls_certificates_are_verified_by_default_and_the_opt_out_is_explicit_and_loud(tmp_path, api_requests):
    for env in ("local", "local-s3", "emr", "glue"):
        assert load_config(env, environ={}).api.verify_tls is True, env
    server = start_api(scale=15, seed=83)
    proxy = TlsProxy(server.port, *self_signed_certificate(tmp_path, ip="127.0.0.1"))
    try:
        config = extract_config(str(tmp_path / "lake"), proxy.url, api={"max_attempts": 2})
        with LogCapture() as logs, pytest.raises(Exception) as refused:
            run_extract(config)
        assert 1 <= proxy.handshakes <= config.api.max_attempts  # bounded by the attempts, not retried without end
        assert api_requests == []  # refused at the handshake: no request (no password) reached the API
        assert "certificate" in (str(refused.value) + logs.text).lower(), str(refused.value)
        assert not (tmp_path / "lake" / "raw").exists()  # nothing was fetched, the password never left

        insecure = extract_config(str(tmp_path / "insecure"), proxy.url, api={"verify_tls": False})
        with LogCapture() as logs:
            result = run_extract(insecure)
    finally:
        proxy.stop()
        server.stop()
    warnings = [
        line for line in logs.lines if line.startswith("WARNING") and "TLS certificate verification is OFF" in line
    ]
    assert warnings and "api.verify_tls=false" in warnings[0]
    assert_matches_ground_truth(storage_for(insecure), result.run_id, 15, 83)


def test_a_certificate_failure_is_not_retried_and_says_what_is_wrong(tmp_path):
    """A bad certificate will not fix itself: the run fails at the first attempt (not retried like a dropped
    connection, although aiohttp's ClientConnectorCertificateError is a ClientConnectionError), naming the
    certificate problem."""
    server = start_api(scale=5, seed=84)
    proxy = TlsProxy(server.port, *self_signed_certificate(tmp_path, ip="127.0.0.1"))
    try:
        config = extract_config(str(tmp_path / "lake"), proxy.url, api={"max_attempts": 5})
        with pytest.raises(Exception) as refused:
            run_extract(config)
    finally:
        proxy.stop()
        server.stop()
    assert proxy.handshakes == 1, f"{proxy.handshakes} TLS handshakes: the certificate failure was retried"
    assert "certificate" in str(refused.value).lower() and "verify_tls" in str(refused.value), str(refused.value)


# ---------------------------------------------------------------- pseudonymised gold

PSEUDONYMISE_KEY = "a-256-bit-secret-for-the-tests-0123456789abcdef"
ROTATED_KEY = "the-next-256-bit-secret-of-the-tests-fedcba9876543210"


def test_gold_is_pseudonymised_with_the_keyed_hash_when_configured_and_silver_stays_clear(spark, tmp_path, monkeypatch):
    """Acceptance test of the wiring (transform.pseudonymise_gold + transform.pseudonymise_key_env)."""
    from multiverse_etl.storage import open_storage as storage_at
    from multiverse_etl.transform import run_transform
    from support.landed import T0, Page, apprenticeship, programme, project, write_run

    root = str(tmp_path / "lake")
    write_run(
        storage_at(root),
        T0,
        programmes=[Page([programme(7)])],
        apprenticeships=[Page([apprenticeship(1, first_name=" Zoë ", email_address="Zoe@Example.org")])],
        projects=[Page([project(10)], parent=1)],
    )
    config = make_config(
        root,
        transform={"pseudonymise_gold": True, "pseudonymise_key_env": "RELIABILITY_TEST_KEY", "shuffle_partitions": 2},
    )
    monkeypatch.delenv("RELIABILITY_TEST_KEY", raising=False)
    with pytest.raises(Exception, match="RELIABILITY_TEST_KEY"):
        run_transform(spark, config)  # no key: refused before anything is written
    assert not (tmp_path / "lake" / "silver").exists() and not (tmp_path / "lake" / "gold").exists()
    monkeypatch.setenv("RELIABILITY_TEST_KEY", PSEUDONYMISE_KEY)
    run_transform(spark, config)
    lake = Lake.at(root)
    silver = read_table(spark, lake, "silver/apprenticeships").first()
    gold = read_table(spark, lake, "gold/apprenticeships").first()
    gold_project = read_table(spark, lake, "gold/apprenticeship_projects").first()
    monkeypatch.setenv("RELIABILITY_TEST_KEY", ROTATED_KEY)  # the key is rotated; no new landing run
    run_transform(spark, config)
    after_rotation = read_table(spark, lake, "gold/apprenticeships").first()

    def pseudonym(column: str, value: str, key: str = PSEUDONYMISE_KEY) -> str:
        return hmac.new(key.encode(), column.encode() + b"\x00" + value.encode(), hashlib.sha256).hexdigest()

    assert (silver.first_name, silver.email_address) == ("Zoë", "zoe@example.org")  # silver keeps the clear values
    for row in (gold, gold_project):
        assert row.first_name == pseudonym("first_name", "Zoë")
        assert row.last_name == pseudonym("last_name", "Lovelace")
        assert row.email_address == pseudonym("email_address", "zoe@example.org")
        assert row.email_is_valid is True  # computed on the clear address, before hashing
    assert gold.programme_name == "Programme 7" and gold.projects_total == 1
    # A new key is applied by the next run even when silver did not move: gold never keeps the old pseudonyms.
    assert after_rotation.email_address == pseudonym("email_address", "zoe@example.org", ROTATED_KEY), (
        "gold was not rebuilt with the new key"
    )
