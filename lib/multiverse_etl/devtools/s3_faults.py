"""A fault-injecting HTTP proxy in front of a local S3 endpoint: S3's own failures, on purpose, by request type.

Every request is forwarded to the endpoint as received (method, path, query, headers with the Host header and the
SigV4 signature untouched, body), except on a seeded pseudo-random share of them, chosen per request type
(`put`, `get`, `head`, `list`, `delete`, `multipart`, `copy`, `other`), which get one of:

* ``slowdown``     503 with S3's ``<Error><Code>SlowDown</Code>...`` body, not forwarded
* ``reset``        the connection reset (TCP RST) before forwarding: nothing happened on the store
* ``reset_after``  (writes only) forwarded, then the connection reset instead of the answer: the write
                   happened but its client does not know (the hard case for conditional writes and commits)
* ``slow``         forwarded, the answer held back `slow_s`

Requests are counted per *area* (``lock``: keys under ``_locks/``; ``s3a``: Hadoop S3A's AWS SDK; ``boto3``:
everything else, the landing) and type; `injected` counts the faults by area, type and kind, so a test can
assert that faults really reached each kind of traffic. Each area/type stream has its own seeded generator,
so a sequential stream (the lock's) gets the same faults on every run whatever the other traffic does.

Used by the S3-fault test (tests/test_s3_faults.py) and `make chaos` (bench/chaos.py); moto's server
mode does not verify signatures, and the Host header is forwarded as the client signed it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional
from urllib.parse import parse_qs

log = logging.getLogger(__name__)

TYPES = ("put", "get", "head", "list", "delete", "multipart", "copy", "other")
WRITES = frozenset({"put", "delete", "multipart", "copy"})
KINDS = ("slowdown", "reset", "reset_after", "slow")
AREAS = ("boto3", "lock", "s3a")
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "expect"}
)
LIST_PARAMS = frozenset(
    {"list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after", "marker", "encoding-type"}
    | {"fetch-owner"}
)
SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>FAULT</RequestId></Error>"
)


@dataclass
class FaultPlan:
    """What to inject: `rate` of each type's requests (or `rates[type]`, or `rates[area/type]`) get a fault.

    The kind is drawn among `kinds` (``reset_after`` only for writes). `script["area/type"]` lists the kinds of
    that stream's first requests (``None``: no fault), before the random draw takes over. `first_on_path["area/type"]`
    = (pattern, kind): the first request of that stream whose path matches the pattern gets that kind, wherever it
    falls in the stream (Spark's writes run side by side: their order, so their positions, vary from run to run).
    """

    rate: float = 0.03
    rates: Mapping[str, float] = field(default_factory=dict)
    kinds: tuple[str, ...] = KINDS
    slow_s: float = 0.3
    seed: int = 7
    script: Mapping[str, list[Optional[str]]] = field(default_factory=dict)
    first_on_path: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def rate_for(self, area: str, kind: str) -> float:
        return self.rates.get(f"{area}/{kind}", self.rates.get(kind, self.rate))


# Every kind of fault on the first requests of the landing's writes, of the lock's (its first write is the
# conditional-writes probe's If-None-Match: answer lost, retried by boto3, 412) and of S3A's; the random draw after
# them. And the answer to the first Delta commit S3A writes lost (DELTA_COMMIT_ANSWER_LOST), wherever it comes.
EVERY_KIND_FIRST: dict[str, list[Optional[str]]] = {
    "boto3/put": ["slowdown", None, "reset", None, "reset_after", None, "slow"],
    "lock/put": ["reset_after", None, "slowdown", None, "reset", None, "slow", None, "reset_after"],
    "lock/get": ["reset", None, "slowdown"],
    "s3a/put": [None, "reset_after", None, None, "slowdown", None, "reset", None, None, "reset_after"],
    "s3a/delete": [None, "reset_after"],
}


# s3.* settings for runs through the proxy: S3A's waits between retries short (its defaults start at 500 ms), the AWS
# SDK's own attempts few so that S3A's retry policy is exercised too.
QUICK_S3A_RETRIES = {
    "s3a_attempts_maximum": 3,
    "s3a_retry_interval_ms": 20,
    "s3a_throttle_interval_ms": 20,
    "s3a_retry_limit": 10,
    "s3a_throttle_limit": 20,
}


DELTA_COMMIT = r"/_delta_log/\d{20}\.json$"
DELTA_COMMIT_ANSWER_LOST = {"s3a/put": (DELTA_COMMIT, "reset_after")}


def pipeline_plan(rate: float = 0.03, seed: int = 24, slow_s: float = 0.2) -> FaultPlan:
    """The plan of the S3-fault test and `make chaos`: EVERY_KIND_FIRST, then `rate` of every request."""
    return FaultPlan(
        rate=rate, slow_s=slow_s, seed=seed, script=EVERY_KIND_FIRST, first_on_path=DELTA_COMMIT_ANSWER_LOST
    )


def request_type(method: str, path: str, query: str, headers: Mapping[str, str]) -> str:
    """S3's request types as the proxy tells them apart (path style: /bucket/key)."""
    params = parse_qs(query, keep_blank_values=True)
    has_key = bool(path.lstrip("/").partition("/")[2])
    if "uploadId" in params or "uploads" in params:
        return "multipart"
    if method == "POST" and "delete" in params:
        return "delete"
    if method == "PUT" and has_key:
        return "copy" if "x-amz-copy-source" in {k.lower() for k in headers} else "put"
    if method == "GET":
        if has_key:
            return "get"
        return "other" if set(params) - LIST_PARAMS else "list"
    if method == "HEAD" and has_key:
        return "head"
    if method == "DELETE" and has_key:
        return "delete"
    return "other"


def request_area(path: str, headers: Mapping[str, str]) -> str:
    agent = next((v for k, v in headers.items() if k.lower() == "user-agent"), "")
    if "/_locks/" in path:
        return "lock"
    if "aws-sdk-java" in agent or "Hadoop" in agent:
        return "s3a"
    return "boto3"


class S3FaultProxy:
    """The proxy on 127.0.0.1 (its own event loop in a thread): `endpoint_url` replaces the store's in the clients."""

    def __init__(self, upstream: str, plan: Optional[FaultPlan] = None, port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.plan = plan or FaultPlan()
        self.port = port
        self.enabled = True
        self.requests: Counter[tuple[str, str]] = Counter()  # (area, type)
        self.injected: Counter[tuple[str, str, str]] = Counter()  # (area, type, kind)
        self.faulted: list[tuple[str, str, str, str]] = []  # (area, type, kind, path) of each fault, in order
        self._rngs: dict[str, random.Random] = {}
        self._seen: Counter[str] = Counter()
        self._path_fault_done: set[str] = set()
        self._mutex = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Any = None
        self._session: Any = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None

    # ------------------------------------------------------------ what to inject

    def decide(self, area: str, kind_of_request: str, path: str = "") -> Optional[str]:
        """The fault for the next request of this area and type, or None (counted in `requests`/`injected`)."""
        stream = f"{area}/{kind_of_request}"
        with self._mutex:
            self.requests[(area, kind_of_request)] += 1
            if not self.enabled:
                return None
            n = self._seen[stream]
            self._seen[stream] += 1
            scripted = self.plan.script.get(stream, [])
            on_path = self.plan.first_on_path.get(stream)
            fault: Optional[str]
            if on_path and stream not in self._path_fault_done and re.search(on_path[0], path):
                self._path_fault_done.add(stream)
                fault = on_path[1]
            elif n < len(scripted):
                fault = scripted[n]
            else:
                rng = self._rngs.get(stream)
                if rng is None:
                    seed = int.from_bytes(hashlib.sha256(f"{self.plan.seed}/{stream}".encode()).digest()[:8], "big")
                    rng = self._rngs[stream] = random.Random(seed)
                kinds = [k for k in self.plan.kinds if k != "reset_after" or kind_of_request in WRITES]
                draw, pick = rng.random(), rng.random()
                fault = (
                    kinds[int(pick * len(kinds))]
                    if kinds and draw < self.plan.rate_for(area, kind_of_request)
                    else None
                )
            if fault == "reset_after" and kind_of_request not in WRITES:
                fault = "reset"
            if fault is not None:
                self.injected[(area, kind_of_request, fault)] += 1
                self.faulted.append((area, kind_of_request, fault, path))
            return fault

    def injected_by(self, area: Optional[str] = None, kind: Optional[str] = None, type_: Optional[str] = None) -> int:
        with self._mutex:
            return sum(
                n
                for (a, t, k), n in self.injected.items()
                if (area is None or a == area) and (kind is None or k == kind) and (type_ is None or t == type_)
            )

    def describe(self) -> str:
        """One line: the faults injected per area (kinds summed over types) and the requests seen."""
        with self._mutex:
            parts = []
            for area in AREAS:
                kinds: Counter[str] = Counter()
                for (a, _, k), n in self.injected.items():
                    if a == area:
                        kinds[k] += n
                seen = sum(n for (a, _), n in self.requests.items() if a == area)
                if seen:
                    detail = " ".join(f"{k} {kinds[k]}" for k in KINDS if kinds[k])
                    parts.append(f"{area}: {sum(kinds.values())}/{seen} ({detail or 'none'})")
            return "; ".join(parts)

    def missing(self) -> list[str]:
        """What a run through `pipeline_plan` must have had and did not: every kind of fault on the landing's
        writes, the lock's writes and S3A's traffic, a fault on each S3A request type, a Delta commit's answer lost."""
        gaps = [f"no {kind} on {area}" for area in AREAS for kind in KINDS if not self.injected_by(area, kind)]
        gaps += [f"no fault on {area} writes" for area in ("boto3", "lock") if not self.injected_by(area, type_="put")]
        gaps += [
            f"no fault on s3a {t}"
            for t in ("put", "get", "head", "list", "delete")
            if not self.injected_by("s3a", type_=t)
        ]
        with self._mutex:
            commits = [
                p for a, _, k, p in self.faulted if a == "s3a" and k == "reset_after" and re.search(DELTA_COMMIT, p)
            ]
        if not commits:
            gaps.append("no Delta commit's answer lost")
        return gaps

    # ------------------------------------------------------------ the server

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3FaultProxy:
        self._thread = threading.Thread(target=self._run, name="s3-fault-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._cleanup())
        loop.close()

    async def _start(self) -> None:
        import aiohttp
        from aiohttp import web

        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=128),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=300),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> S3FaultProxy:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        headers = dict(request.headers)
        kind_of_request = request_type(request.method, request.path, request.query_string, headers)
        area = request_area(request.path, headers)
        fault = self.decide(area, kind_of_request, request.path)
        if fault == "slowdown":
            log.debug("s3 fault: SlowDown on %s %s", request.method, request.path)
            return web.Response(
                status=503, body=SLOWDOWN_BODY, headers={"Content-Type": "application/xml", "Retry-After": "0"}
            )
        if fault == "reset":
            log.debug("s3 fault: reset before %s %s", request.method, request.path)
            return await self._reset(request)
        body = await request.read()
        forward = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        url = self.upstream + request.path_qs
        try:
            async with self._session.request(
                request.method, url, headers=forward, data=body if body else None, allow_redirects=False
            ) as answer:
                content = await answer.read()
                status = answer.status
                answer_headers = [
                    (k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP | {"content-length"}
                ]
                length = answer.headers.get("Content-Length")
        except Exception as exc:  # the store itself failed: the client sees a 502 and retries
            log.warning("s3 fault proxy: upstream %s %s failed: %s", request.method, request.path, exc)
            return web.Response(status=502, text=str(exc))
        if fault == "reset_after":
            log.debug("s3 fault: reset after %s %s (%d)", request.method, request.path, status)
            return await self._reset(request)
        if fault == "slow":
            await asyncio.sleep(self.plan.slow_s)
        response = web.Response(status=status, body=content if request.method != "HEAD" else None)
        for k, v in answer_headers:
            response.headers.add(k, v)
        if request.method == "HEAD" and length is not None:
            response.headers["Content-Length"] = length
        return response

    @staticmethod
    async def _reset(request: Any) -> Any:
        """Reset the client's connection (RST, not a clean close) and answer nothing."""
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            transport.abort()
        raise asyncio.CancelledError()


def start_s3_fault_proxy(upstream: str, plan: Optional[FaultPlan] = None, port: int = 0) -> S3FaultProxy:
    """A started proxy in front of `upstream` (call .stop(), or use it as a context manager)."""
    return S3FaultProxy(upstream, plan, port).start()
