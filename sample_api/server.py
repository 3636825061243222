"""Run the replica with uvicorn: in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from typing import Any, Iterator, Optional

import uvicorn

from .app import SampleAPI, create_app
from .data import Dataset
from .settings import ServerSettings

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 lets the kernel pick a free one."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _config(app: SampleAPI, log_level: str, access_log: bool, own_logging: bool) -> uvicorn.Config:
    """One worker, uvloop + httptools when installed, no lifespan: fast and quiet.

    ``own_logging`` lets uvicorn configure logging (CLI); in-process servers leave the
    host's logging (pytest's, an extractor's) alone.
    """
    loop = "uvloop" if _has("uvloop") else "asyncio"
    http = "httptools" if _has("httptools") else "h11"
    extra: dict[str, Any] = {} if own_logging else {"log_config": None}
    return uvicorn.Config(
        app,
        loop=loop,
        http=http,
        lifespan="off",
        log_level=log_level,
        access_log=access_log,
        interface="asgi3",
        backlog=2048,
        **extra,
    )


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


class _Server(uvicorn.Server):
    """uvicorn server that reports its address once it accepts connections."""

    def __init__(self, config: uvicorn.Config, announce: Optional[str] = None) -> None:
        super().__init__(config)
        self.announce = announce

    async def startup(self, sockets: Optional[list[socket.socket]] = None) -> None:
        await super().startup(sockets=sockets)
        if self.announce and self.started:
            sys.stdout.write(self.announce + "\n")
            sys.stdout.flush()


class RunningServer:
    """A replica served from a background thread; ``stop()`` (or ``with``) ends it."""

    def __init__(
        self, settings: ServerSettings, app: SampleAPI, host: str, port: int, log_level: str = "warning"
    ) -> None:
        self.settings = settings
        self.app = app
        self._sock = _bind(host, port)
        self.host = host
        self.port = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._server = _Server(_config(app, log_level, access_log=False, own_logging=False))
        self._thread = threading.Thread(target=self._run, name=f"sample-api-{self.port}", daemon=True)
        self._error: Optional[BaseException] = None

    @property
    def dataset(self) -> Dataset:
        return self.app.service.dataset

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc

    def start(self, timeout: float = 30.0) -> RunningServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"sample API failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("sample API did not start in time")
            time.sleep(0.01)
        log.info("sample API on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and free the port; open connections are closed."""
        if not self._thread.is_alive():
            self._sock.close()
            return
        self._server.should_exit = True
        self._thread.join(timeout / 2)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout / 2)
        self._sock.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def run_in_thread(
    settings: ServerSettings,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    dataset: Optional[Dataset] = None,
    fast_path: bool = True,
    log_level: str = "warning",
) -> RunningServer:
    """Start a replica in this process on ``host:port`` (0 = a free port) and return it.

    Every start makes a new pagination key, so a restart invalidates earlier tokens
    (they answer 500), as a restart of the original does. ``dataset`` lets tests share
    one built dataset between restarts.
    """
    app = create_app(settings, dataset, fast_path=fast_path)
    return RunningServer(settings, app, host, port, log_level).start()


@contextlib.contextmanager
def serve_in_background(**settings: Any) -> Iterator[RunningServer]:
    """``with serve_in_background(scale=200, fault_rate=0.1) as srv: srv.url``."""
    server = run_in_thread(ServerSettings(**settings))
    try:
        yield server
    finally:
        server.stop()


def serve_forever(
    settings: ServerSettings,
    *,
    host: str = DEFAULT_HOST,
    port: int = 8000,
    log_level: str = "warning",
    access_log: bool = False,
) -> None:
    """Foreground server for the CLI; prints ``listening on URL`` once it accepts."""
    started = time.perf_counter()
    app = create_app(settings)
    log.info("dataset ready in %.2fs", time.perf_counter() - started)
    sock = _bind(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    server = _Server(
        _config(app, log_level, access_log, own_logging=True), announce=f"listening on http://{shown}:{actual}"
    )
    server.run(sockets=[sock])
