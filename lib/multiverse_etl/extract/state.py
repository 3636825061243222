"""Extraction state kept in the lake: the incremental watermark and each run's plan (for --resume).

_state/watermark.json                  {"modified_date": "2024-03-05T10:21:33", "run_id": ..., "updated_at": ...}
_state/extract_runs/<run_id>.json      what a run was started with, so a resume lands the same thing

The watermark is the largest `modified_date` landed, kept in the API's own string format
(the API compares strings), but never later than the extraction's start (the server's Date or the local
clock, whichever is earlier). It only moves forward, and only after the run's manifest exists.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Optional

from ..landing import STATE_PREFIX
from ..storage import ObjectNotFound, Storage
from .errors import ExtractError

log = logging.getLogger(__name__)

WATERMARK_KEY = f"{STATE_PREFIX}/watermark.json"
RUNS_PREFIX = f"{STATE_PREFIX}/extract_runs"
FUTURE_TOLERANCE = dt.timedelta(days=1)

_TIMESTAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2})([T ])(\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?$")


def parse_api_timestamp(value: Any) -> Optional[dt.datetime]:
    """A `modified_date` as a naive UTC datetime, or None when it is not a real timestamp."""
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP.match(value)
    if not match:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # 2024-02-30T25:61:00 has the shape but is no date
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return parsed


def shift_timestamp(value: str, seconds: float) -> str:
    """`value` moved by `seconds`, written in the same format (separator, fraction digits, zone)."""
    match = _TIMESTAMP.match(value)
    if not match:
        raise ValueError(f"not an API timestamp: {value!r}")
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00")) + dt.timedelta(seconds=seconds)
    sep, fraction, zone = match.group(4), match.group(8), match.group(9)
    text = parsed.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    if fraction:
        text += f".{parsed.microsecond:06d}"[: len(fraction)]
    return text + (zone or "")


class WatermarkTracker:
    """The largest real `modified_date` seen; corrupt or far-future values are counted, not taken."""

    def __init__(self, now: Optional[dt.datetime] = None) -> None:
        self.value: Optional[str] = None
        self._best: Optional[dt.datetime] = None
        self.ignored = 0
        now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        self._latest_allowed = now + FUTURE_TOLERANCE

    def observe(self, records: Iterable[Any]) -> None:
        for record in records:
            raw = record.get("modified_date") if type(record) is dict else None
            when = parse_api_timestamp(raw)
            if when is None or when > self._latest_allowed:
                self.ignored += 1
                continue
            if self._best is None or when > self._best:
                self._best, self.value = when, raw

    def reset(self) -> None:
        self.value, self._best, self.ignored = None, None, 0


def extraction_start(local_start: str, server_start: Optional[dt.datetime]) -> dt.datetime:
    """The earlier of the local clock at the run's start and the server's clock (its Date header), aware UTC."""
    local = dt.datetime.fromisoformat(local_start.replace("Z", "+00:00"))
    local = local if local.tzinfo else local.replace(tzinfo=dt.timezone.utc)
    return min(local, server_start) if server_start is not None else local


def capped_watermark(value: Optional[str], start: dt.datetime) -> Optional[str]:
    """`value`, or the extraction's `start` written in its format when `value` is later: a record dated ahead
    (up to FUTURE_TOLERANCE is landed) never moves the watermark past what the run could have seen."""
    parsed = parse_api_timestamp(value)
    ceiling = start.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if value is None or parsed is None or parsed <= ceiling:
        return value
    log.warning(
        "the latest modified_date %s is after the extraction's start %s: the watermark stops there",
        value,
        ceiling.isoformat(),
    )
    return shift_timestamp(value, -(parsed - ceiling).total_seconds())


def later_watermark(a: Optional[str], b: Optional[str]) -> Optional[str]:
    """The later of two watermarks (None = none yet)."""
    if a is None or b is None:
        return a or b
    pa, pb = parse_api_timestamp(a), parse_api_timestamp(b)
    if pa is None or pb is None:
        return max(a, b)
    return b if pb > pa else a


def read_watermark(storage: Storage) -> Optional[str]:
    """The stored watermark, or None before the first committed run."""
    doc = _read_json(storage, WATERMARK_KEY)
    if doc is None:
        return None
    value = doc.get("modified_date")
    if value is not None and parse_api_timestamp(value) is None:
        raise ExtractError(f"{storage.uri(WATERMARK_KEY)} holds {value!r}, not an API timestamp; fix or delete it")
    return value


def advance_watermark(storage: Storage, value: Optional[str], run_id: str, now: str) -> Optional[str]:
    """Store `value` if it is later than what is stored (never moves back); the stored value after."""
    current = read_watermark(storage)
    best = later_watermark(current, value)
    if best is not None and best != current:
        storage.put(
            WATERMARK_KEY, json.dumps({"modified_date": best, "run_id": run_id, "updated_at": now}, indent=2).encode()
        )
        log.info("watermark advanced from %s to %s by run %s", current, best, run_id)
    return best


def modified_after_for(watermark: Optional[str], lookback_seconds: int) -> Optional[str]:
    """What an incremental run sends: the watermark minus the look-back, in the API's format."""
    if watermark is None:
        return None
    return shift_timestamp(watermark, -lookback_seconds)


@dataclass(frozen=True)
class ExtractPlan:
    """What a run was started with; a resume re-reads it so it lands what the first attempt would have."""

    run_id: str
    mode: str
    projects_scope: str
    api_url: str
    started_at: str
    watermark_before: Optional[str]
    modified_after: Optional[str]
    attempt: int = 1


def run_plan_key(run_id: str) -> str:
    return f"{RUNS_PREFIX}/{run_id}.json"


def write_run_plan(storage: Storage, plan: ExtractPlan) -> None:
    storage.put(run_plan_key(plan.run_id), json.dumps(asdict(plan), indent=2, sort_keys=True).encode())


def read_run_plan(storage: Storage, run_id: str) -> Optional[ExtractPlan]:
    doc = _read_json(storage, run_plan_key(run_id))
    if doc is None:
        return None
    try:
        return ExtractPlan(**doc)
    except TypeError:
        raise ExtractError(f"{storage.uri(run_plan_key(run_id))} is not a run plan this version understands") from None


def _read_json(storage: Storage, key: str) -> Optional[dict[str, Any]]:
    try:
        raw = storage.get(key)
    except ObjectNotFound:
        return None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError:
        raise ExtractError(f"{storage.uri(key)} is not valid JSON; fix or delete it") from None
    if not isinstance(doc, dict):
        raise ExtractError(f"{storage.uri(key)} is not a JSON object; fix or delete it")
    return doc
