"""The HTTP/1.1 pool (extract/http/wire.py) against real servers on 127.0.0.1: raw asyncio servers that write
exactly the bytes a case needs (framing, encodings, early closes, stalls, TLS), and the sample API replica.

Never a silent re-send: a request that got no whole answer raises, and the server saw it once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import json
import ssl
import zlib
from typing import AsyncIterator, Awaitable, Callable, Optional

import pytest

from multiverse_etl.extract.http import ApiClient, ClientSettings
from multiverse_etl.extract.http.session import HEADERS
from multiverse_etl.extract.http.wire import (
    CertificateError,
    ConnectFailed,
    Disconnected,
    Pool,
    TooLarge,
    WireError,
)
from sample_api.server import run_in_thread
from sample_api.settings import ServerSettings
from support.tls import self_signed_certificate

PAGE = b'{"data":[{"id":1}],"pagination":{"next_token":null,"previous_token":null,"page_size":20}}'


@dataclasses.dataclass
class Seen:
    connection: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


# An answer: writes what it likes; returns False to close the connection after it.
Answer = Callable[[Seen, asyncio.StreamWriter], Awaitable[bool]]


class RawServer:
    """Reads each request (head, and a body of its Content-Length) and lets `answer` write raw bytes."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.seen: list[Seen] = []
        self.connections = 0
        self.open = 0
        self.most_open = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        number = self.connections
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, target, _ = head[0].split(" ")
                headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                seen = Seen(number, method, target, headers, body)
                self.seen.append(seen)
                if not await self.answer(seen, writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


@contextlib.asynccontextmanager
async def raw_server(answer: Answer, tls: Optional[ssl.SSLContext] = None) -> AsyncIterator[tuple[RawServer, int]]:
    server = RawServer(answer)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield server, listening.sockets[0].getsockname()[1]
    finally:
        listening.close()


def pool(port: int, scheme: str = "http", host: str = "127.0.0.1", **settings) -> Pool:
    values = dict(size=4, connect_timeout_s=2.0, read_timeout_s=2.0, max_body_bytes=1 << 20, headers=HEADERS)
    values.update(settings)
    return Pool(f"{scheme}://{host}:{port}", **values)  # type: ignore[arg-type]


def reply_bytes(status: int = 200, body: bytes = PAGE, *headers: str, length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} OK", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def writes(*parts: bytes, keep: bool = True, pause: float = 0.0) -> Answer:
    """An answer of these bytes, written one part at a time (a pause between: separate reads for the client)."""

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        for part in parts:
            writer.write(part)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        return keep

    return answer


def run(coro):
    return asyncio.run(coro)


# ---------------------------------------------------------------- framing and keep-alive


def test_content_length_bodies_reuse_one_connection_and_send_the_clients_headers():
    async def main():
        async with raw_server(writes(reply_bytes(200, PAGE, "Content-Type: application/json"))) as (server, port):
            wire = pool(port)
            replies = [
                await wire.request("GET", f"/programmes?page_size={n}", {"Authorization": "Bearer t"}) for n in (1, 2)
            ]
            await wire.close()
        return server, replies, port

    server, replies, port = run(main())
    assert [r.body for r in replies] == [PAGE, PAGE] and replies[0].status == 200
    assert replies[0].headers["content-type"] == "application/json"
    assert [s.connection for s in server.seen] == [1, 1]  # keep-alive: the second request on the same connection
    sent = server.seen[0]
    assert sent.method == "GET" and sent.target == "/programmes?page_size=1"
    assert sent.headers["host"] == f"127.0.0.1:{port}"  # a port that is not the scheme's default is named
    assert sent.headers["user-agent"].startswith("multiverse-etl/") and sent.headers["accept"] == "application/json"
    assert sent.headers["accept-encoding"] == "gzip, deflate" and sent.headers["authorization"] == "Bearer t"


def test_the_host_header_leaves_out_the_schemes_default_port():
    def host(url: str) -> str:
        return Pool(url, size=1, connect_timeout_s=1, read_timeout_s=1, max_body_bytes=1)._fixed

    assert host("http://api.example.com:80/v1") == host("https://api.example.com/") == "Host: api.example.com\r\n"
    assert host("https://user:pw@api.example.com:8443") == "Host: api.example.com:8443\r\n"
    assert host("http://[::1]:8000") == "Host: [::1]:8000\r\n"


def test_a_chunked_body_with_extensions_and_trailers_split_across_reads():
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"10;name=value\r\n"
        + PAGE[:16]
        + b"\r\n"
        + f"{len(PAGE) - 16:x}\r\n".encode()
        + PAGE[16:]
        + b"\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    pieces = [chunked[i : i + 7] for i in range(0, len(chunked), 7)]

    async def main():
        async with raw_server(writes(*pieces, pause=0.001)) as (server, port):
            wire = pool(port)
            first = await wire.request("GET", "/a")
            second = await wire.request("GET", "/b")  # the connection is still in step after the trailers
            await wire.close()
        return server, first, second

    server, first, second = run(main())
    assert first.body == PAGE and second.body == PAGE
    assert [s.connection for s in server.seen] == [1, 1]


def test_connection_close_and_a_body_read_to_the_end_of_the_connection():
    answers = iter(
        [
            writes(reply_bytes(200, b"one", "Connection: close"), keep=False),
            writes(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"read ", b"to the end", keep=False),
            writes(reply_bytes(200, b"three")),
        ]
    )

    async def answer(seen, writer):
        return await next(answers)(seen, writer)

    async def main():
        async with raw_server(answer) as (server, port):
            wire = pool(port)
            bodies = [(await wire.request("GET", f"/{n}")).body for n in range(3)]
            await wire.close()
        return server, bodies

    server, bodies = run(main())
    assert bodies == [b"one", b"read to the end", b"three"]
    assert [s.connection for s in server.seen] == [1, 2, 3]  # neither closed connection was used again


def test_interim_1xx_answers_are_skipped_and_header_names_are_case_insensitive():
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n"
    final = reply_bytes(429, b'{"detail":"Too Many Requests"}', "RETRY-AFTER: 2", "content-TYPE: application/json")

    async def main():
        async with raw_server(writes(interim, final)) as (_, port):
            wire = pool(port)
            reply = await wire.request("GET", "/x")
            await wire.close()
        return reply

    reply = run(main())
    assert reply.status == 429 and reply.headers["retry-after"] == "2"
    assert reply.headers["content-type"] == "application/json" and "link" not in reply.headers


def test_at_most_size_connections_are_open_at_once():
    async def slow(seen, writer):
        await asyncio.sleep(0.01)
        writer.write(reply_bytes())
        return True

    async def main():
        async with raw_server(slow) as (server, port):
            wire = pool(port, size=3)
            replies = await asyncio.gather(*(wire.request("GET", f"/{n}") for n in range(20)))
            open_after = wire.open_connections
            await wire.close()
        return server, replies, open_after

    server, replies, open_after = run(main())
    assert len(replies) == 20 and all(r.body == PAGE for r in replies)
    assert server.connections == 3 and server.most_open == 3 and open_after == 3


# ---------------------------------------------------------------- no whole answer: raised, never re-sent


def test_an_idle_connection_the_server_closed_is_not_used_again():
    async def answer_then_close(seen, writer):
        writer.write(reply_bytes())
        return False  # the server's keep-alive timeout: it closes the idle connection (no Connection: close)

    async def main():
        async with raw_server(answer_then_close) as (server, port):
            wire = pool(port)
            await wire.request("GET", "/1")
            for _ in range(200):  # until the close has reached the client
                if not wire._idle or not wire._idle[-1].usable():
                    break
                await asyncio.sleep(0.005)
            second = await wire.request("GET", "/2")
            await wire.close()
        return server, second

    server, second = run(main())
    assert second.body == PAGE
    assert [(s.connection, s.target) for s in server.seen] == [(1, "/1"), (2, "/2")]  # each sent once


def test_a_request_the_server_closes_unanswered_is_a_disconnect_and_is_not_sent_again():
    async def close_on_second(seen, writer):
        if seen.target == "/2":
            return False  # read it, answer nothing, close: the race of a keep-alive timeout
        writer.write(reply_bytes())
        return True

    async def main():
        async with raw_server(close_on_second) as (server, port):
            wire = pool(port)
            await wire.request("GET", "/1")
            with pytest.raises(Disconnected, match="no answer"):
                await wire.request("GET", "/2")
            await wire.close()
        return server

    server = run(main())
    assert [s.target for s in server.seen] == ["/1", "/2"]


@pytest.mark.parametrize(
    "cut",
    [
        reply_bytes(200, PAGE)[:-10],  # Content-Length: fewer bytes than declared
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + PAGE[:32] + b"\r\n",  # no last chunk
        b"HTTP/1.1 200 OK\r\nContent-Le",  # in the middle of the head
        reply_bytes(200, gzip.compress(PAGE)[:-8], "Content-Encoding: gzip"),  # a whole body, a cut gzip stream
    ],
    ids=["content-length", "chunked", "head", "gzip"],
)
def test_a_body_cut_short_is_never_a_page(cut):
    async def main():
        async with raw_server(writes(cut, keep=False)) as (server, port):
            wire = pool(port)
            with pytest.raises(WireError):
                await wire.request("GET", "/x")
            await wire.close()
        return server

    assert len(run(main()).seen) == 1


def test_what_is_not_http_is_a_wire_error():
    async def main():
        async with raw_server(writes(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")) as (_, port):
            wire = pool(port)
            with pytest.raises(WireError, match="not an HTTP"):
                await wire.request("GET", "/x")
            await wire.close()

    run(main())


def test_a_refused_connection_names_the_os_reason():
    async def main():
        async with raw_server(writes(reply_bytes())) as (_, port):
            pass  # closed again: nothing listens on the port now
        with pytest.raises(ConnectFailed) as failed:
            await pool(port).request("GET", "/x")
        return failed.value

    error = run(main())
    assert isinstance(error.os_error, OSError) and error.os_error.strerror


def test_a_line_break_in_a_header_value_is_refused_before_anything_is_sent():
    async def main():
        async with raw_server(writes(reply_bytes())) as (server, port):
            wire = pool(port)
            with pytest.raises(ValueError, match="line break"):
                await wire.request("GET", "/x", {"Authorization": "Bearer t\r\nX-Injected: 1"})
            await wire.close()
        return server

    assert run(main()).seen == []


# ---------------------------------------------------------------- timeouts


def test_the_read_timeout_is_the_longest_silence_not_the_whole_answer():
    body = PAGE * 4
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    trickle = [head] + [body[i : i + 32] for i in range(0, len(body), 32)]  # 12 parts, 0.05 s apart: 0.6 s in all

    async def stall(seen, writer):
        writer.write(head)
        await asyncio.sleep(5)
        return False

    async def main():
        async with raw_server(writes(*trickle, pause=0.05)) as (_, port):
            wire = pool(port, read_timeout_s=0.5)
            slow_but_steady = await wire.request("GET", "/x")
            await wire.close()
        async with raw_server(stall) as (_, port):
            wire = pool(port, read_timeout_s=0.2)
            with pytest.raises(asyncio.TimeoutError):
                await wire.request("GET", "/x")
            await wire.close()
        return slow_but_steady

    assert run(main()).body == body


def test_the_connect_timeout_covers_a_tls_handshake_that_never_ends():
    async def main():
        listening = await asyncio.start_server(lambda r, w: asyncio.sleep(5), "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        try:
            with pytest.raises(asyncio.TimeoutError):
                await pool(port, scheme="https", connect_timeout_s=0.2).request("GET", "/x")
        finally:
            listening.close()

    run(main())


# ---------------------------------------------------------------- encodings and the body limit


@pytest.mark.parametrize(
    "encoding, encode",
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as the standard says
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send it
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw"],
)
def test_gzip_and_deflate_bodies_are_inflated(encoding, encode):
    async def main():
        async with raw_server(writes(reply_bytes(200, encode(PAGE), f"Content-Encoding: {encoding}"))) as (_, port):
            wire = pool(port)
            reply = await wire.request("GET", "/x")
            await wire.close()
        return reply

    assert run(main()).body == PAGE


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read():
    async def head_only(seen, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n")  # and no body ever follows
        await asyncio.sleep(5)
        return False

    async def main():
        async with raw_server(head_only) as (_, port):
            wire = pool(port, max_body_bytes=1000, read_timeout_s=3.0)
            with pytest.raises(TooLarge, match="it declares 5000000 bytes"):
                await wire.request("GET", "/x")
            await wire.close()

    run(main())


@pytest.mark.parametrize("framing", ["chunked", "gzip", "eof"])
def test_a_body_over_the_limit_is_refused_while_it_is_read(framing):
    big = b"a" * 50_000
    if framing == "chunked":
        answer = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(big):x}\r\n".encode()
            + big
            + b"\r\n0\r\n\r\n"
        )
    elif framing == "gzip":  # 50 kB inflated from ~100 bytes
        answer = reply_bytes(200, gzip.compress(big), "Content-Encoding: gzip")
    else:
        answer = b"HTTP/1.0 200 OK\r\n\r\n" + big

    async def main():
        async with raw_server(writes(answer, keep=False)) as (_, port):
            wire = pool(port, max_body_bytes=1000)
            with pytest.raises(TooLarge, match="more than 1000 bytes read"):
                await wire.request("GET", "/x")
            await wire.close()

    run(main())


# ---------------------------------------------------------------- TLS


def tls_server_context(cert_path: str, key_path: str, names: list[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,misc,return-value]
    return context


def test_tls_is_verified_against_the_ca_bundle_with_sni_and_the_host_name_checked(tmp_path, monkeypatch):
    cert_path, key_path = self_signed_certificate(tmp_path, dns="localhost")
    names: list[str] = []

    async def main():
        async with raw_server(writes(reply_bytes()), tls=tls_server_context(cert_path, key_path, names)) as (_, port):
            with pytest.raises(CertificateError):  # not in the system's CA bundle
                await pool(port, scheme="https", host="localhost").request("GET", "/x")
            monkeypatch.setenv("SSL_CERT_FILE", cert_path)  # now it is the bundle
            trusted = pool(port, scheme="https", host="localhost")
            reply = await trusted.request("GET", "/x")
            await trusted.close()
            with pytest.raises(CertificateError) as mismatch:  # trusted, but it does not name 127.0.0.1
                await pool(port, scheme="https").request("GET", "/x")
            unverified = pool(port, scheme="https", verify_tls=False)
            anyway = await unverified.request("GET", "/x")
            await unverified.close()
        return reply, mismatch.value, anyway

    reply, mismatch, anyway = run(main())
    assert reply.body == PAGE and anyway.body == PAGE
    assert "localhost" in names  # SNI named the host
    assert "127.0.0.1" in str(mismatch.certificate_error)


# ---------------------------------------------------------------- the replica, and the client on top


LOGIN = ({"Content-Type": "application/x-www-form-urlencoded"}, b"username=multiverse&password=mult1v3r53")


async def bearer(wire: Pool) -> dict[str, str]:
    """The replica's form login through the pool: the Authorization header of its token."""
    login = await wire.request("POST", "/login", *LOGIN)
    return {"Authorization": f"Bearer {json.loads(login.body)['access_token']}"}


def test_against_the_replica_a_form_login_pages_on_one_connection_and_a_dropped_connection():
    server = run_in_thread(ServerSettings(scale=30, seed=3))
    dropping = run_in_thread(ServerSettings(scale=30, seed=3, drop_rate=1.0))

    async def main():
        wire = pool(server.port)
        token = await bearer(wire)
        page = await wire.request("GET", "/apprenticeships?page_size=30", token)
        projects = [await wire.request("GET", f"/apprenticeships/{n}/projects", token) for n in (1, 2, 3)]
        connections = wire.open_connections
        await wire.close()
        drops = pool(dropping.port)
        with pytest.raises(Disconnected):
            await drops.request("GET", "/programmes", await bearer(drops))
        await drops.close()
        return page, projects, connections

    try:
        page, projects, connections = run(main())
    finally:
        server.stop()
        dropping.stop()
    assert page.status == 200 and len(json.loads(page.body)["data"]) == 30
    assert all(p.status == 200 for p in projects) and connections == 1


def test_the_client_counts_a_dropped_connection_as_a_drop_and_retries_it():
    async def drop_first(seen, writer):
        if seen.target == "/login":
            body = b'{"access_token":"tok","token_type":"bearer"}'
            writer.write(reply_bytes(200, body, "Content-Type: application/json"))
            return True
        if sum(s.target.startswith("/programmes") for s in server_ref[0].seen) == 1:
            return False  # the first data request: closed unanswered
        writer.write(reply_bytes(200, PAGE, "Content-Type: application/json"))
        return True

    server_ref: list[RawServer] = []

    async def main():
        from multiverse_etl.extract.credentials import Credentials
        from multiverse_etl.extract.redaction import Secret

        async with raw_server(drop_first) as (server, port):
            server_ref.append(server)
            settings = ClientSettings(url=f"http://127.0.0.1:{port}", concurrency=4, backoff_base_s=0.01)
            async with ApiClient(settings, Credentials("u", Secret("p"), "test")) as client:
                page = await client.get_page("/programmes", {"page_size": 5}, entity="programmes")
        return server, client, page

    server, client, page = run(main())
    assert page.body == PAGE
    assert client.counts.drops == 1 and client.counts.retries == 1
    assert [s.target for s in server.seen] == ["/login", "/programmes?page_size=5", "/programmes?page_size=5"]
    assert server.seen[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert server.seen[0].body == b"username=u&password=p"


def test_requests_waiting_for_a_connection_when_the_pool_closes_end_with_a_disconnect():
    release = asyncio.Event()

    async def held(seen, writer):
        await release.wait()
        writer.write(reply_bytes())
        return True

    async def main():
        async with raw_server(held) as (server, port):
            wire = pool(port, size=1)
            first = asyncio.ensure_future(wire.request("GET", "/1"))
            second = asyncio.ensure_future(wire.request("GET", "/2"))
            while not server.seen:  # the first is being answered, the second waits for the one connection
                await asyncio.sleep(0.005)
            await wire.close()
            release.set()
            results = await asyncio.gather(first, second, return_exceptions=True)
        return server, results

    server, (first, second) = run(main())
    assert first.body == PAGE  # a busy connection finishes its request, then closes
    assert isinstance(second, Disconnected) and [s.target for s in server.seen] == ["/1"]
