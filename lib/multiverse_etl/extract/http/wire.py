"""HTTP/1.1 on the wire: a keep-alive connection pool over `asyncio.Protocol`, and nothing else.

Why not aiohttp: the fan-out makes one small request per apprenticeship, so client CPU per request bounds the
extraction on a small machine, and aiohttp spent about half of it (callgrind, docs/extract.md). This module does
only what the API client needs: one request at a time per connection (no pipelining), bodies framed by
Content-Length, chunks or the connection's end, gzip/deflate inflated, every body bounded while it is read.

What it never does: re-send a request. A connection that closes before a whole answer came is `Disconnected`
(the caller counts a drop and its policy retries), a timeout is `asyncio.TimeoutError`, an answer over the limit
is `TooLarge`. A certificate the CA bundle does not trust is `CertificateError`, which no retry can fix.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import zlib
from typing import Mapping, NamedTuple, Optional, Union, cast
from urllib.parse import urlsplit

from ...errors import EtlError

__all__ = ["CertificateError", "ConnectFailed", "Disconnected", "Pool", "Reply", "TooLarge", "WireError"]

MAX_HEAD_BYTES = 64 * 1024  # status line and headers of one answer (a longer head is not an API answer)
MAX_LINE_BYTES = 8 * 1024  # a chunk-size or trailer line


class WireError(EtlError):
    """No whole answer came: refused, reset, closed early, or not HTTP. The request may or may not have run."""

    def __init__(self, message: str, os_error: Optional[OSError] = None) -> None:
        super().__init__(message)
        self.os_error = os_error  # the OS's reason, if any (bodies.describe shows its strerror)


class ConnectFailed(WireError):
    """No connection: refused, unreachable, a name that does not resolve, a TLS handshake that failed."""


class Disconnected(WireError):
    """The connection closed (or was reset) before the whole answer came."""


class BadAnswer(WireError):
    """What came back is not an HTTP/1.x answer (or its body breaks its own framing)."""


class CertificateError(WireError):
    """The server's certificate is not trusted or does not name the host."""

    def __init__(self, error: ssl.SSLCertVerificationError) -> None:
        super().__init__(str(error))
        self.certificate_error = error  # bodies.untrusted_certificate names it


class TooLarge(EtlError):
    """The body is larger than the pool's limit (after inflation); `seen` says how that was known."""

    def __init__(self, seen: str) -> None:
        super().__init__(seen)
        self.seen = seen


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]  # names lower-cased; repeated headers joined with ", "
    body: bytes  # inflated when the server sent gzip or deflate


# ---------------------------------------------------------------- parsing one answer

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _TO_EOF, _DONE = range(8)


class _Answer:
    """One answer read incrementally from the bytes as they arrive (`feed`, `feed_eof`); bounded memory."""

    __slots__ = ("limit", "no_body", "state", "status", "headers", "keep_alive", "_buf", "_left", "_parts", "_size")

    def __init__(self, limit: int, no_body: bool) -> None:
        self.limit = limit
        self.no_body = no_body  # a HEAD: whatever the headers declare, no body follows
        self.state = _HEAD
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self._buf = b""  # bytes of a head or a line not complete yet
        self._left = 0  # body or chunk bytes still to come
        self._parts: Union[list[bytes], _Inflated] = []
        self._size = 0

    def reply(self) -> Reply:
        parts = self._parts
        body = parts.finish() if isinstance(parts, _Inflated) else b"".join(parts)
        return Reply(self.status, self.headers, body)

    def feed(self, data: bytes) -> bool:
        """Take the next bytes; True once the answer is complete."""
        if self._buf:
            data, self._buf = self._buf + data, b""
        while data:
            state = self.state
            if state == _LENGTH or state == _CHUNK_DATA:
                take = data[: self._left] if len(data) > self._left else data
                self._body(take)
                self._left -= len(take)
                data = data[len(take) :]
                if self._left == 0:
                    if state == _LENGTH:
                        return self._complete(data)
                    self.state = _CHUNK_END
            elif state == _TO_EOF:
                self._body(data)
                return False
            else:  # a head or a line
                end = data.find(b"\r\n\r\n" if state == _HEAD else b"\r\n")
                if end < 0:
                    if len(data) > (MAX_HEAD_BYTES if state == _HEAD else MAX_LINE_BYTES):
                        raise BadAnswer("an answer's head or chunk line is too long")
                    self._buf = data
                    return False
                line, data = data[:end], data[end + (4 if state == _HEAD else 2) :]
                if state == _HEAD:
                    self._head(line)
                elif state == _CHUNK_SIZE:
                    self._chunk_size(line)
                elif state == _CHUNK_END:
                    if line:
                        raise BadAnswer("a chunk longer than its size")
                    self.state = _CHUNK_SIZE
                elif not line:  # the empty line after the trailers
                    return self._complete(data)
            if self.state == _DONE:
                return self._complete(data)
        return self.state == _DONE

    def feed_eof(self) -> bool:
        """The server closed its side: True if that ends the answer (a body read to the end)."""
        if self.state != _TO_EOF:
            return False
        self.state = _DONE
        return True

    def _complete(self, rest: bytes) -> bool:
        self.state = _DONE
        if rest:
            self.keep_alive = False
        return True

    def _head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise BadAnswer("not an HTTP/1.x answer")
        status = int(code)
        if status < 200:  # 100 Continue, 103 Early Hints: an interim answer, the real one follows
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise BadAnswer("a header line without a colon")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.status, self.headers = status, headers
        connection = headers.get("connection", "").lower()
        self.keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._parts = _Inflated(encoding, self.limit)
        if self.no_body or status == 204 or status == 304:
            self.state = _DONE
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self.state = _CHUNK_SIZE
        elif "content-length" in headers:
            declared = headers["content-length"]
            if not declared.isdigit():
                raise BadAnswer("a Content-Length that is not a number")
            self._left = int(declared)
            if self._left > self.limit and not isinstance(self._parts, _Inflated):
                raise TooLarge(f"it declares {self._left} bytes")
            self.state = _LENGTH if self._left else _DONE
        else:  # HTTP/1.0 style: the body ends when the connection does
            self.state, self.keep_alive = _TO_EOF, False

    def _chunk_size(self, line: bytes) -> None:
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise BadAnswer("a chunk size that is not hexadecimal") from None
        if size < 0:
            raise BadAnswer("a negative chunk size")
        self._left = size
        self.state = _CHUNK_DATA if size else _TRAILER

    def _body(self, data: bytes) -> None:
        parts = self._parts
        if isinstance(parts, _Inflated):
            parts.feed(data)
            return
        self._size += len(data)
        if self._size > self.limit:
            raise TooLarge(f"more than {self.limit} bytes read")
        parts.append(data)


class _Inflated:
    """A gzip or deflate body inflated as it arrives, never more than `limit` bytes of it held."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.encoding = encoding
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self._start = b""  # deflate: the first bytes, until they tell zlib-wrapped from raw
        self._z: Optional[zlib._Decompress] = None  # made at the first byte: an empty body is no stream

    def feed(self, data: bytes) -> None:
        z = self._z
        if z is None:
            data, self._start = self._start + data, b""
            z = self._z = self._decompressor(data)
            if z is None:
                self._start = data
                return
        try:
            out = z.decompress(data, self.limit + 1 - self.size)
        except zlib.error:
            raise BadAnswer(f"a {self.encoding} body that does not inflate") from None
        self.size += len(out)
        if self.size > self.limit:
            raise TooLarge(f"more than {self.limit} bytes read")
        self.parts.append(out)

    def finish(self) -> bytes:
        cut_short = not self._z.eof if self._z is not None else bool(self._start)
        if cut_short:
            raise BadAnswer(f"a {self.encoding} body cut short")
        return b"".join(self.parts)

    def _decompressor(self, start: bytes) -> Optional[zlib._Decompress]:
        """gzip; "deflate" is zlib-wrapped by the standard and raw from some servers: its first two bytes tell."""
        if self.encoding != "deflate":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if len(start) < 2:
            return None
        zlib_wrapped = (start[0] & 0x0F) == 8 and ((start[0] << 8) | start[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)


# ---------------------------------------------------------------- one connection


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request, then its answer, at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Optional[asyncio.Transport] = None
        self.closed = False
        self._answer: Optional[_Answer] = None
        self._waiter: Optional[asyncio.Future[Reply]] = None
        self.last_read = 0.0  # when the request went or its answer's bytes last came (the pool's sweep reads it)

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def exchange(self, request: bytes, answer: _Answer) -> asyncio.Future[Reply]:
        """Send one request; the future is its reply (or the error that ended it)."""
        assert self.transport is not None
        self._answer = answer
        self._waiter = waiter = self.loop.create_future()
        self.last_read = self.loop.time()
        if not self.usable():  # closed between its connect and this request: nothing was sent
            self._end(Disconnected("the connection closed before the request was sent"))
            return waiter
        self.transport.write(request)
        return waiter

    @property
    def waiting(self) -> bool:
        return self._waiter is not None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        self._end(Disconnected("the connection was closed"))

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's is not an asyncio.Transport subclass)

    def data_received(self, data: bytes) -> None:
        answer = self._answer
        if answer is None:  # nothing was asked: a server's last word before it closes an idle connection
            self.close()
            return
        self.last_read = self.loop.time()
        try:
            done = answer.feed(data)
        except (WireError, TooLarge) as error:
            self.close_with(error)
            return
        if done:
            self._end(None)

    def eof_received(self) -> bool:
        self.closed = True
        answer = self._answer
        if answer is not None and answer.feed_eof():
            self._end(None)
        return False  # close the transport: this client never half-closes

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        answer = self._answer
        if answer is not None and exc is None and answer.feed_eof():
            self._end(None)
            return
        what = "reset" if exc is not None else "closed"
        got = "a partial answer" if answer is not None and answer.state != _HEAD else "no answer"
        os_error = exc if isinstance(exc, OSError) else None
        self._end(Disconnected(f"the connection was {what} by the server ({got})", os_error))

    # internals

    def close_with(self, error: BaseException) -> None:
        self._end(error)
        self.close()

    def _end(self, error: Optional[BaseException]) -> None:
        """Settle the waiting request: its reply, or `error`."""
        waiter, answer = self._waiter, self._answer
        self._waiter = self._answer = None
        if waiter is None or waiter.done() or answer is None:
            return
        if error is None:
            try:
                waiter.set_result(answer.reply())
            except WireError as bad:
                waiter.set_exception(bad)
        else:
            waiter.set_exception(error)


# ---------------------------------------------------------------- the pool


class Pool:
    """Keep-alive connections to one origin, at most `size` open at once; `request` is the one entry point.

    Settings mirror ClientSettings: a connect timeout (TCP and TLS handshake), a read timeout (the longest
    silence while waiting for or reading an answer; one sweep of the pool every quarter of it checks, which
    costs less than a timer per request), certificate and host name verified unless `verify_tls`
    is false, and `max_body_bytes` the bound of any body after inflation."""

    def __init__(
        self,
        url: str,
        *,
        size: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_body_bytes: int,
        verify_tls: bool = True,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: Optional[ssl.SSLContext] = _tls_context(verify_tls) if parts.scheme == "https" else None
        self.size = size
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_body_bytes = max_body_bytes
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal keeps its brackets
        default_port = parts.port is None or parts.port == (443 if self.ssl else 80)
        fixed = {"Host": host if default_port else f"{host}:{self.port}", **(headers or {})}
        _checked(*fixed.values())
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._idle: list[_Connection] = []  # last in, first out: the most recently used is the least likely closed
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[Optional[_Connection]]] = collections.deque()
        self._closed = False
        self._connections: set[_Connection] = set()  # every connection made, pruned as they close (the sweep)
        self._sweep: Optional[asyncio.TimerHandle] = None

    async def request(
        self,
        method: str,
        target: str,
        headers: Optional[Mapping[str, str]] = None,
        body: bytes = b"",
    ) -> Reply:
        """One request (`target`: the encoded path and query), its whole answer; raises as the module says."""
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed}"
        if headers:
            _checked(target, *headers.values())
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        else:
            _checked(target)
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        request = (head + "\r\n").encode() + body
        connection = self._take_idle() or await self._acquire()
        reusable = False
        try:
            answer = _Answer(self.max_body_bytes, no_body=method == "HEAD")
            reply_soon = connection.exchange(request, answer)
            if self._sweep is None:
                self._sweep = connection.loop.call_later(self.read_timeout_s / 4, self._check_timeouts)
            reply = await reply_soon
            reusable = answer.keep_alive
            return reply
        finally:
            self._release(connection, reusable)

    async def close(self) -> None:
        """Close the idle connections now, the busy ones as their requests end."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        self._open -= len(idle)
        for waiter in self._waiters:  # requests still waiting for a connection: none will come
            if not waiter.done():
                waiter.set_exception(Disconnected("the pool was closed"))
        self._waiters.clear()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    @property
    def open_connections(self) -> int:
        return self._open

    def _take_idle(self) -> Optional[_Connection]:
        """The last idle connection still open, if any (no coroutine: the common case costs least)."""
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                return connection
            self._open -= 1
        return None

    async def _acquire(self) -> _Connection:
        """A connection when none is idle: a new one if fewer than `size` are open, else the next given back."""
        if self._open >= self.size:
            waiter: asyncio.Future[Optional[_Connection]] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release(waiter.result(), True)  # handed over as we were cancelled: pass it on
                raise
            if handed is not None and handed.usable():
                return handed
            if handed is not None:
                handed.close()  # closed while handed over: its slot is ours to connect with
        else:
            self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._release(None, False)
            raise

    def _release(self, connection: Optional[_Connection], reusable: bool) -> None:
        """Give a connection back (kept if `reusable`), or give back its slot."""
        if connection is not None and not (reusable and connection.usable() and not self._closed):
            connection.close()
            connection = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)  # a connection, or None: "a slot is free, connect"
                return
        if connection is not None:
            self._idle.append(connection)
        else:
            self._open -= 1

    def _check_timeouts(self) -> None:
        """Every quarter of the read timeout while requests wait: end those silent for longer than it."""
        now = asyncio.get_running_loop().time()
        waiting = False
        for connection in list(self._connections):
            if connection.closed:
                self._connections.discard(connection)
            elif connection.waiting:
                if now - connection.last_read >= self.read_timeout_s:
                    connection.close_with(asyncio.TimeoutError())
                else:
                    waiting = True
        self._sweep = (
            asyncio.get_running_loop().call_later(self.read_timeout_s / 4, self._check_timeouts) if waiting else None
        )

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        attempt = loop.create_task(
            loop.create_connection(
                lambda: _Connection(loop),
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=self.host if self.ssl else None,
            )
        )
        timed_out = False
        try:
            await asyncio.wait((attempt,), timeout=self.connect_timeout_s)
        finally:  # timed out, or this task was cancelled: end the attempt (not wait_for: a TLS handshake cut
            if not attempt.done():  # short ends in ConnectionAbortedError, which wait_for would pass on as is)
                timed_out = True
                attempt.cancel()
                await asyncio.gather(attempt, return_exceptions=True)
        try:
            _, connection = attempt.result()
        except ssl.SSLCertVerificationError as error:
            raise CertificateError(error) from None
        except (OSError, asyncio.CancelledError) as error:  # refused, unreachable, unresolvable, TLS handshake
            if timed_out:
                raise asyncio.TimeoutError() from None
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}", _os_error(error)) from None
        if timed_out:  # connected just as the time ran out
            connection.close()
            raise asyncio.TimeoutError()
        self._connections.add(connection)
        sock = connection.transport.get_extra_info("socket") if connection.transport else None
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a request is one write: send it now
        return connection


def _os_error(error: BaseException) -> Optional[OSError]:
    return error if isinstance(error, OSError) else None


def _tls_context(verify: bool) -> ssl.SSLContext:
    """The system's CA bundle, host names checked; or (verify_tls: false) no verification at all."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _checked(*values: str) -> None:
    """Header values and a target with no line break: nothing a server sent (a token) can add a header."""
    for value in values:
        if "\r" in value or "\n" in value:
            raise ValueError("a line break in an HTTP header value or request target")
