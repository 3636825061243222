"""Progress reporting: the periodic line (rates, ETA), the terminal bar, the summary table."""

from __future__ import annotations

import io
import logging

from multiverse_etl.extract.credentials import Credentials
from multiverse_etl.extract.http import ApiClient, ClientSettings
from multiverse_etl.extract.progress import FanoutState, Progress, summary_lines
from multiverse_etl.extract.redaction import Secret


def idle_client() -> ApiClient:
    return ApiClient(ClientSettings(url="http://127.0.0.1:9"), Credentials("u", Secret("p"), "test"))


def test_the_progress_line_has_counts_rates_and_an_eta(caplog):
    stats = idle_client()
    stats.counts.requests, stats.counts.retries = 400, 7
    fanout = FanoutState(known=1000, done=250, done_before=100, listing_finished=True)
    progress = Progress(stats, fanout, lambda: (380, 1234), interval_s=5, stream=io.StringIO(), tty=False)
    now = progress.started + 5.0  # a fixed clock: 5 s after the start, for the line and the fan-out alike
    fanout.started = progress.started
    with caplog.at_level(logging.INFO):
        progress.log_line(now)
    record = caplog.records[-1]
    line = record.getMessage()
    assert "5s elapsed, pages=380 records=1234 requests=400 (80/s)" in line and "retries=7" in line
    assert "parents=350/1100 " in line  # the listing is over
    assert progress.eta_s(now) == 15.0  # 750 left at 50 a second
    assert line.endswith(" ETA=15s") and record.eta_s == 15.0 and record.duration_s == 5.0


def test_there_is_no_eta_before_a_pace_or_while_parents_are_still_listed():
    fanout = FanoutState(known=200, done=0, listing_finished=True)
    progress = Progress(idle_client(), fanout, lambda: (0, 0), interval_s=5, stream=io.StringIO(), tty=False)
    fanout.started = progress.started
    assert progress.eta_s(progress.started + 1.0) is None  # nothing done yet: no pace
    fanout.done, fanout.listing_finished = 50, False
    assert progress.eta_s(progress.started + 1.0) is None  # the total is not known yet


def test_the_bar_is_drawn_on_a_terminal_and_cleared():
    stream = io.StringIO()
    fanout = FanoutState(known=200, done=50, listing_finished=True)
    progress = Progress(idle_client(), fanout, lambda: (0, 0), interval_s=5, stream=stream, tty=True)
    fanout.started = progress.started
    progress.draw_bar(progress.started + 1.0)  # 50 a second, 150 left
    assert "\r[#######" in stream.getvalue() and " 25.0% 50/200 parents" in stream.getvalue()
    assert "ETA=3s" in stream.getvalue()
    progress.clear_bar()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_the_summary_table_adds_up():
    part = {"key": "k", "pages": 2, "records": 5, "bytes": 100}
    entity = {"pages": 2, "records": 5, "requests": 3, "retries": 1, "parts": [part]}
    manifest = {
        "entities": {"apprenticeships": entity, "projects": entity, "programmes": entity},
        "requests": 10,
        "retries": 3,
        "duration_s": 2.0,
        "mode": "full",
        "watermark_before": None,
        "watermark_after": "2024-01-01T00:00:00",
    }
    rows = summary_lines(manifest)
    total = [r for r in rows if r.startswith("total")][0]
    assert total.split() == ["total", "6", "15", "3", "300", "10", "3"]
    assert rows[-1].startswith("2.0s, 5 requests/s, 8 records/s")
