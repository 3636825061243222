"""Progress reporting: the periodic line (rates, ETA), the terminal bar, the summary table."""

from __future__ import annotations

import io
import logging
import time

from multiverse_etl.extract.credentials import Credentials
from multiverse_etl.extract.http import ApiClient, ClientSettings
from multiverse_etl.extract.progress import FanoutState, Progress, summary_lines
from multiverse_etl.extract.redaction import Secret


def idle_client() -> ApiClient:
    return ApiClient(ClientSettings(url="http://127.0.0.1:9"), Credentials("u", Secret("p"), "test"))


def test_the_progress_line_has_counts_rates_and_an_eta(caplog):
    stats = idle_client()
    stats.counts.requests, stats.counts.retries = 400, 7
    fanout = FanoutState(known=1000, done=250, done_before=100, listing_finished=True, started=time.monotonic() - 5.0)
    progress = Progress(stats, fanout, lambda: (380, 1234), interval_s=5, stream=io.StringIO(), tty=False)
    with caplog.at_level(logging.INFO):
        progress.log_line()
    line = caplog.records[-1].getMessage()
    assert "pages=380 records=1234 requests=400" in line and "retries=7" in line
    assert "parents=350/1100 " in line  # the listing is over
    eta = progress.eta_s(time.monotonic())
    assert 13 < eta < 17  # 750 left at 50 a second
    assert "ETA=15s" in line or "ETA=14s" in line or "ETA=16s" in line


def test_the_bar_is_drawn_on_a_terminal_and_cleared():
    stream = io.StringIO()
    fanout = FanoutState(known=200, done=50, listing_finished=True, started=time.monotonic() - 1.0)
    progress = Progress(idle_client(), fanout, lambda: (0, 0), interval_s=5, stream=stream, tty=True)
    progress.draw_bar(time.monotonic())
    assert "\r[#######" in stream.getvalue() and " 25.0% 50/200 parents" in stream.getvalue()
    progress.clear_bar()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_the_summary_table_adds_up():
    part = {"key": "k", "pages": 2, "records": 5, "bytes": 100}
    entity = {"pages": 2, "records": 5, "requests": 3, "retries": 1, "parts": [part]}
    manifest = {"entities": {"apprenticeships": entity, "projects": entity, "programmes": entity},
                "requests": 10, "retries": 3, "duration_s": 2.0, "mode": "full",
                "watermark_before": None, "watermark_after": "2024-01-01T00:00:00"}
    rows = summary_lines(manifest)
    total = [r for r in rows if r.startswith("total")][0]
    assert total.split() == ["total", "6", "15", "3", "300", "10", "3"]
    assert rows[-1].startswith("2.0s, 5 requests/s, 8 records/s")
