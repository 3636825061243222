"""Progress of a running extraction: a log line every few seconds, a bar on a terminal, a summary table.

Hand-rolled on purpose: one line of `\\r` output does not earn a dependency.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, TextIO

from .http import ApiClient

log = logging.getLogger("multiverse_etl.extract.progress")

BAR_WIDTH = 30
BAR_INTERVAL_S = 0.5


@dataclass
class FanoutState:
    """How far the projects fan-out is: parents known so far, done, done by an earlier attempt."""

    known: int = 0
    done: int = 0
    done_before: int = 0
    listing_finished: bool = False
    started: Optional[float] = None


class Progress:
    """Reports counters while a run goes on; `run()` is a task cancelled when the run ends."""

    def __init__(
        self,
        client: ApiClient,
        fanout: FanoutState,
        totals: Callable[[], tuple[int, int]],
        interval_s: float,
        stream: Optional[TextIO] = None,
        tty: Optional[bool] = None,
    ) -> None:
        self.client = client
        self.fanout = fanout
        self.totals = totals  # () -> (pages, records) landed so far
        self.interval_s = interval_s
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.started = time.monotonic()
        self._last = (self.started, 0, 0, 0)  # time, requests, 429s, 5xx at the last line
        self._bar_shown = False

    async def run(self) -> None:
        next_log = self.started + self.interval_s
        try:
            while True:
                await asyncio.sleep(BAR_INTERVAL_S if self.tty else self.interval_s)
                now = time.monotonic()
                if now >= next_log:
                    self.log_line(now)
                    next_log = now + self.interval_s
                if self.tty:
                    self.draw_bar(now)
        finally:
            self.clear_bar()

    def eta_s(self, now: float) -> Optional[float]:
        """Seconds left in the fan-out at the current pace (None until there is a pace, and while parents are
        still being listed: the API gives no total, so the parents not yet listed cannot be counted)."""
        f = self.fanout
        if f.started is None or f.done == 0 or not f.listing_finished:
            return None
        rate = f.done / max(now - f.started, 1e-6)
        return max(f.known - f.done, 0) / rate

    def log_line(self, now: Optional[float] = None) -> None:
        now = now or time.monotonic()
        pages, records = self.totals()
        stats, throttle = self.client.counts, self.client.throttle
        phase = "slow start" if throttle.slow_start else "adaptive" if throttle.adaptive else "fixed"
        paced = throttle.rate
        last_t, last_requests, last_429, last_5xx = self._last
        sent = stats.requests - last_requests
        rate = sent / max(now - last_t, 1e-6)
        share_429 = (stats.status_429 - last_429) / sent if sent else 0.0
        share_5xx = (stats.status_5xx - last_5xx) / sent if sent else 0.0
        self._last = (now, stats.requests, stats.status_429, stats.status_5xx)
        eta = self.eta_s(now)
        f = self.fanout
        self.clear_bar()
        log.info(
            "extract progress: %.0fs elapsed, pages=%d records=%d requests=%d (%.0f/s) limit=%s (%s) paced=%s 429=%.1f%% "
            "5xx=%.1f%% retries=%d relogins=%d parents=%d/%d%s %s",
            now - self.started,
            pages,
            records,
            stats.requests,
            rate,
            throttle.limit,
            phase,
            "-" if paced is None else f"{paced:.0f}/s",
            100 * share_429,
            100 * share_5xx,
            stats.retries,
            self.client.auth.relogins,
            f.done + f.done_before,
            f.known + f.done_before,
            "" if f.listing_finished else "+",
            _eta_text(eta, f),
            extra={
                "entity": "all",
                "pages": pages,
                "records": records,
                "requests": stats.requests,
                "requests_per_s": round(rate, 1),
                "retries": stats.retries,
                "relogins": self.client.auth.relogins,
                "limit": throttle.limit,
                "limit_phase": phase,
                "paced_per_s": None if paced is None else round(paced, 1),
                "status_429": stats.status_429,
                "status_5xx": stats.status_5xx,
                "parents_done": f.done + f.done_before,
                "parents_known": f.known + f.done_before,
                "eta_s": None if eta is None else round(eta, 1),
                "duration_s": round(now - self.started, 3),
            },
        )

    def draw_bar(self, now: float) -> None:
        f = self.fanout
        total = f.known + f.done_before
        done = f.done + f.done_before
        share = done / total if total else 0.0
        filled = int(share * BAR_WIDTH)
        eta = self.eta_s(now)
        text = (
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:6.1%} {done}/{total}"
            f"{'' if f.listing_finished else '+'} parents  {self.client.counts.requests} req  "
            f"{self.client.counts.retries} retries  limit {self.client.throttle.limit}  {_eta_text(eta, f)}\x1b[K"
        )
        self.stream.write(text)
        self.stream.flush()
        self._bar_shown = True

    def clear_bar(self) -> None:
        if self._bar_shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._bar_shown = False


def _eta_text(eta: Optional[float], fanout: FanoutState) -> str:
    if eta is not None:
        return f"ETA={eta:.0f}s"
    return "ETA unknown" if not fanout.listing_finished else "ETA=?"


def summary_lines(manifest: dict[str, Any]) -> list[str]:
    """The end-of-run table, one string per row (logged line by line)."""
    head = f"{'entity':<16}{'pages':>9}{'records':>11}{'parts':>7}{'bytes':>13}{'requests':>10}{'retries':>9}"
    rows = [head, "-" * len(head)]
    total = {"pages": 0, "records": 0, "parts": 0, "bytes": 0}
    for name, e in manifest["entities"].items():
        size = sum(p["bytes"] for p in e["parts"])
        rows.append(
            f"{name:<16}{e['pages']:>9}{e['records']:>11}{len(e['parts']):>7}{size:>13}"
            f"{e['requests']:>10}{e['retries']:>9}"
        )
        for key, value in (
            ("pages", e["pages"]),
            ("records", e["records"]),
            ("parts", len(e["parts"])),
            ("bytes", size),
        ):
            total[key] += value
    rows.append("-" * len(head))
    rows.append(
        f"{'total':<16}{total['pages']:>9}{total['records']:>11}{total['parts']:>7}{total['bytes']:>13}"
        f"{manifest['requests']:>10}{manifest['retries']:>9}"
    )
    duration = manifest["duration_s"] or 1e-9
    rows.append(
        f"{manifest['duration_s']:.1f}s, {manifest['requests'] / duration:.0f} requests/s, "
        f"{total['records'] / duration:.0f} records/s, mode {manifest['mode']}, "
        f"watermark {manifest['watermark_before']} -> {manifest['watermark_after']}"
    )
    client = manifest.get("client")
    if client:
        rows.append(client_line(client))
    return rows


def client_line(client: dict[str, Any]) -> str:
    """The limiter's and the token's story in one row: limit range, logins, 401/429/5xx, drops, token life."""
    life = client.get("token_life_min")
    latency = client.get("latency") or {}
    return (
        f"limit {client.get('limit_final')} (range {client.get('limit_min')}-{client.get('limit_max')} of "
        f"{client.get('limit_ceiling')}, {client.get('concurrency_mode')}), logins {client.get('logins')}, "
        f"401s {client.get('status_401')}, 429s {client.get('status_429')}, 5xx {client.get('status_5xx')}, "
        f"drops {client.get('drops')}, timeouts {client.get('timeouts')}, "
        f"token life {'-' if life is None else life} requests, paced {client.get('learnt_requests_per_s') or '-'}/s, "
        f"p50 {latency.get('p50_ms')} ms"
    )


def summary_extra(manifest: dict[str, Any]) -> dict[str, Any]:
    """The summary's numbers as structured-log fields (plain keys, JSON-able values)."""
    client = manifest.get("client") or {}
    duration = manifest["duration_s"] or 1e-9
    return {
        "entity": "all",
        "pages": sum(e["pages"] for e in manifest["entities"].values()),
        "records": sum(e["records"] for e in manifest["entities"].values()),
        "requests": manifest["requests"],
        "requests_per_s": round(manifest["requests"] / duration, 1),
        "retries": manifest["retries"],
        "logins": manifest.get("logins"),
        "limit": client.get("limit_final"),
        "limit_min": client.get("limit_min"),
        "limit_max": client.get("limit_max"),
        "status_401": client.get("status_401"),
        "status_429": client.get("status_429"),
        "status_5xx": client.get("status_5xx"),
        "drops": client.get("drops"),
        "token_life_min": client.get("token_life_min"),
        "duration_s": manifest["duration_s"],
    }
