"""Seeded, scalable data behind the replica.

Why it is built this way:

* Only compact state is stored per apprenticeship (id, version, ``modified_date``,
  first project id, project count) and one byte per project (its status). Text fields
  are derived on demand from ``(seed, id, version)``, so 1,000,000 apprenticeships build
  in seconds and stay far below 2 GB, and a projects page costs O(page) at any scale.
* Generation ``G`` is generation 0 replayed through ``G`` deterministic steps, so a
  restart with ``G + 1`` looks like a day of changes in the source system.
* Corruption is a pure function of ``(seed, entity, id)``: the dump and the server agree
  on exactly which records are broken.
"""

from __future__ import annotations

import bisect
import calendar
import hashlib
import itertools
import logging
import random
import threading
import time
import unicodedata
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

import orjson

from . import vocab
from .corrupt import corrupt_record, corruption_of

log = logging.getLogger(__name__)

BASE_START = calendar.timegm((2023, 1, 1, 0, 0, 0))
GENERATION_START = calendar.timegm((2025, 1, 1, 0, 0, 0))
BASE_SPAN = GENERATION_START - BASE_START  # two years of history before generation 1
GENERATION_SPAN = 86400  # each generation is one day of changes

PROGRAMME_COUNT = 43  # prime: never a multiple of a page size > 1
PROGRAMME_ID_SPACE = 50

SHARE_MODIFIED = 0.05
SHARE_ADDED = 0.02
SHARE_DELETED = 0.01
SHARE_STATUS_CHANGED = 0.05

STATUSES = ("pending", "submitted", "graded")
# byte -> status index: 30% pending, 30% submitted, 40% graded
_STATUS_TABLE = bytes((0 if b < 77 else 1 if b < 154 else 2) for b in range(256))


def derive(seed: int, *parts: object) -> int:
    """64-bit value from the seed and parts, stable across processes and versions."""
    text = "|".join(map(str, (seed, *parts))).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def format_ts(ts: int) -> str:
    """The source's date format: ``YYYY-MM-DDTHH:MM:SS``, no zone, no fraction."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))


def _share(n: int, share: float) -> int:
    """How many of ``n`` rows a generation step touches: at least one when rows exist."""
    return max(1, int(n * share + 0.5)) if n else 0


def _project_count(rng: random.Random) -> int:
    """10% none, 0.2% more than 40 (several pages), the rest 1 to 6."""
    u = rng.random()
    if u < 0.10:
        return 0
    if u < 0.102:
        return rng.randint(41, 120)
    return (1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 6)[int((u - 0.102) / 0.898 * 12)]


# ---------------------------------------------------------------- text helpers


def _ascii(text: str) -> str:
    """Transliterate a latin name for an e-mail local part (ß -> ss, ł -> l, ø -> o)."""
    for src, dst in (
        ("ß", "ss"),
        ("ł", "l"),
        ("Ł", "L"),
        ("ø", "o"),
        ("Ø", "O"),
        ("æ", "ae"),
        ("Æ", "Ae"),
        ("đ", "d"),
        ("ı", "i"),
    ):
        text = text.replace(src, dst)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c in "-'"))


def _messy_case(rng: random.Random, text: str) -> str:
    """Mostly unchanged; sometimes shouting or all lower case, as typed into forms."""
    u = rng.random()
    if u < 0.01:
        return text.upper()
    if u < 0.02:
        return text.lower()
    return text


def _messy_space(rng: random.Random, text: str, share: float = 0.03) -> str:
    """Surrounding whitespace that a careless import keeps."""
    if rng.random() >= share:
        return text
    return rng.choice((" {} ", "{} ", " {}", "{}\t", "\u00a0{}", "{}\n", "  {}")).format(text)


def _person(seed: int, person_id: int) -> tuple[str, str, str]:
    """First name, last name and e-mail of one person (stable per person id)."""
    rng = random.Random(derive(seed, "person", person_id))
    groups = vocab.NAME_GROUPS
    first_pool, last_pool, _ = rng.choices(groups, cum_weights=_GROUP_CUM)[0]
    first, first_ascii = rng.choice(first_pool)
    last, last_ascii = rng.choice(last_pool)
    email = _email(rng, first_ascii or _ascii(first), last_ascii or _ascii(last), person_id)
    first = _messy_space(rng, _messy_case(rng, first))
    last = _messy_space(rng, _messy_case(rng, last))
    return first, last, email


_GROUP_CUM = list(itertools.accumulate(weight for _, _, weight in vocab.NAME_GROUPS))


def _email(rng: random.Random, first: str, last: str, person_id: int) -> str:
    """An address built from the name, with the case and spacing people really type."""
    first_part = first.replace(" ", "").lower() or f"user{person_id}"
    last_part = last.replace(" ", "").lower() or "x"
    if rng.random() < 0.7:
        last_part = last_part.replace("'", "")
    pattern = rng.randrange(5)
    if pattern == 0:
        local = f"{first_part}.{last_part}"
    elif pattern == 1:
        local = f"{first_part}{last_part}{rng.randint(1, 99)}"
    elif pattern == 2:
        local = f"{first_part[0]}{last_part}"
    elif pattern == 3:
        local = f"{last_part}.{first_part}"
    else:
        local = f"{first_part}_{last_part}{person_id % 1000}"
    address = f"{local}@{rng.choice(vocab.EMAIL_DOMAINS)}"
    return _messy_space(rng, _email_case(rng, address), 0.02)


def _email_case(rng: random.Random, address: str) -> str:
    u = rng.random()
    if u < 0.60:
        return address
    if u < 0.85:
        local, _, domain = address.partition("@")
        return ".".join(p[:1].upper() + p[1:] for p in local.split(".")) + "@" + domain.title()
    if u < 0.95:
        return address.upper()
    return "".join(c.upper() if rng.random() < 0.5 else c for c in address)


def _description(rng: random.Random) -> str:
    """Free text: commas, quotes, newlines, tabs, emoji; sometimes empty or very long."""
    u = rng.random()
    if u < 0.03:
        return ""
    sentences = rng.sample(vocab.SENTENCES, rng.randint(1, 3))
    text = rng.choice((" ", "\n", "\n\n", " ")).join(sentences)
    if u > 0.995:
        text = " ".join([text] * rng.randint(5, 15))
    return _messy_space(rng, text)


# ---------------------------------------------------------------- programmes


def _programmes(seed: int) -> tuple[list[int], dict[int, str], list[dict[str, Any]]]:
    """The ~40 programmes: ids with gaps, names, durations, descriptions (no corruption)."""
    rng = random.Random(derive(seed, "programmes"))
    ids = sorted(rng.sample(range(1, PROGRAMME_ID_SPACE + 1), PROGRAMME_COUNT))
    bases = rng.sample(vocab.PROGRAMME_BASES, PROGRAMME_COUNT)
    names: dict[int, str] = {}
    records = []
    for pid, base in zip(ids, bases):
        prng = random.Random(derive(seed, "programme", pid))
        names[pid] = base
        name = base
        if prng.random() < 0.6:
            separator = prng.choice((" – ", " - ", ", ", " "))
            name = f"{base}{separator}{prng.choice(vocab.PROGRAMME_LEVELS)}"
        blurbs = prng.sample(vocab.PROGRAMME_BLURBS, prng.randint(1, 3))
        records.append(
            {
                "id": pid,
                "name": _messy_space(prng, name, 0.1),
                "duration": prng.choice(vocab.DURATIONS_MONTHS),
                "description": prng.choice((" ", "\n")).join(blurbs),
            }
        )
    return ids, names, records


# ---------------------------------------------------------------- the dataset


@dataclass
class Dataset:
    """Everything one server process serves; immutable once built.

    Rows are in serving order (apprenticeship ids ascending, as inserted). Positions
    index the parallel arrays; ``position_of`` maps an id to its position.
    """

    seed: int
    scale: int
    generation: int
    corrupt_rate: float
    programme_rows: list[bytes]
    programme_ids: list[int]
    programme_names: dict[int, str]
    ids: array
    versions: array
    mdates: list[str]
    proj_first: array
    proj_count: array
    statuses: bytearray
    duplicates: dict[int, int]
    orphans: dict[int, int]
    served_dates: Optional[list[Optional[str]]] = None
    _filter_cache: OrderedDict[str, array] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def project_total(self) -> int:
        """Number of projects served (all apprenticeships)."""
        return sum(self.proj_count)

    def position_of(self, apprenticeship_id: int) -> Optional[int]:
        """Row position of an apprenticeship id (ids are ascending), or None if unknown."""
        ids = self.ids
        pos = bisect.bisect_left(ids, apprenticeship_id)
        if pos < len(ids) and ids[pos] == apprenticeship_id:
            return pos
        return None

    # -- apprenticeships

    def apprenticeship_record(self, pos: int) -> dict[str, Any]:
        """The record served at ``pos``, corruption included."""
        aid = self.ids[pos]
        record = _apprenticeship(self, aid, self.versions[pos], self.mdates[pos])
        if self.corrupt_rate:
            record = corrupt_record("apprenticeship", record, aid, self.seed, self.corrupt_rate)
        return record

    def apprenticeship_row(self, pos: int) -> bytes:
        """JSON bytes of the record served at ``pos``."""
        return orjson.dumps(self.apprenticeship_record(pos))

    def filtered_positions(self, modified_after: Optional[str]) -> Sequence[int]:
        """Positions whose served ``modified_date`` is ``> modified_after`` as strings.

        The original compares strings, not dates; so does the replica. A record whose
        ``modified_date`` is missing (corruption) always passes. Results are cached per
        value, so walking a filtered list costs one scan, not one per page.
        """
        if modified_after is None:
            return range(len(self.ids))
        with self._lock:
            hit = self._filter_cache.get(modified_after)
            if hit is not None:
                self._filter_cache.move_to_end(modified_after)
                return hit
        if self.served_dates is None:
            found = array("I", [i for i, d in enumerate(self.mdates) if d > modified_after])
        else:
            found = array("I", [i for i, d in enumerate(self.served_dates) if d is None or d > modified_after])
        with self._lock:
            self._filter_cache[modified_after] = found
            while len(self._filter_cache) > 16:
                self._filter_cache.popitem(last=False)
        return found

    # -- projects

    def project_range(self, apprenticeship_id: int) -> tuple[int, int]:
        """``(first project id, count)`` of an apprenticeship; ``(0, 0)`` if unknown."""
        pos = self.position_of(apprenticeship_id)
        if pos is None:
            return 0, 0
        return self.proj_first[pos], self.proj_count[pos]

    def project_record(self, project_id: int, index: int) -> dict[str, Any]:
        """The project served with id ``project_id``, ``index``-th of its apprenticeship."""
        record = _project(self.seed, project_id, index, STATUSES[self.statuses[project_id]])
        if self.corrupt_rate:
            record = corrupt_record("project", record, project_id, self.seed, self.corrupt_rate)
        return record

    def project_row(self, project_id: int, index: int) -> bytes:
        """JSON bytes of ``project_record``."""
        return orjson.dumps(self.project_record(project_id, index))

    # -- programmes

    def programme_record(self, pos: int) -> dict[str, Any]:
        """The programme served at ``pos``, corruption included."""
        return orjson.loads(self.programme_rows[pos])

    # -- iteration for the dump

    def iter_apprenticeships(self) -> Iterator[dict[str, Any]]:
        for pos in range(len(self.ids)):
            yield self.apprenticeship_record(pos)

    def iter_projects(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(apprenticeship id, project)`` in serving order."""
        for pos, aid in enumerate(self.ids):
            first = self.proj_first[pos]
            for i in range(self.proj_count[pos]):
                yield aid, self.project_record(first + i, i)


# ---------------------------------------------------------------- lazy records


def _apprenticeship(ds: Dataset, aid: int, version: int, mdate: str) -> dict[str, Any]:
    """Uncorrupted record of apprenticeship ``aid`` after ``version`` modifications."""
    seed = ds.seed
    rng = random.Random(derive(seed, "apprenticeship", aid))
    source = ds.duplicates.get(aid)
    first, last, email = _person(seed, source if source is not None else aid)
    if source is not None:  # the same person again, typed differently
        first, last = first.strip(), _messy_space(rng, last.strip(), 0.5)
        email = _email_case(rng, email.strip())
    if aid in ds.orphans:
        programme_id = ds.orphans[aid]
        base = "Legacy programme"
    else:
        programme_id = ds.programme_ids[_zipf_index(rng, len(ds.programme_ids))]
        base = ds.programme_names[programme_id]
    name = _apprenticeship_name(rng, base)
    for step in range(1, version + 1):
        first, last, email, name = _modify(seed, aid, step, first, last, email, name, base)
    return {
        "id": aid,
        "name": name,
        "programme_id": programme_id,
        "modified_date": mdate,
        "first_name": first,
        "last_name": last,
        "email_address": email,
    }


def _zipf_index(rng: random.Random, n: int) -> int:
    """Some programmes are far more popular than others."""
    return min(n - 1, int(n * rng.random() ** 2))


def _apprenticeship_name(rng: random.Random, programme: str) -> str:
    employer = rng.choice(vocab.EMPLOYERS)
    pattern = rng.choice(("{p} – {e}", "{p} ({e})", "{e} {p} apprenticeship", "{p}", "{p} - {e}", "{p}, {e}"))
    return _messy_space(rng, pattern.format(p=programme, e=employer))


def _modify(
    seed: int, aid: int, step: int, first: str, last: str, email: str, name: str, programme: str
) -> tuple[str, str, str, str]:
    """One change in the source: a new e-mail, a new name or a renamed apprenticeship."""
    rng = random.Random(derive(seed, "modify", aid, step))
    u = rng.random()
    if u < 0.4:
        local = email.strip().split("@")[0]
        email = f"{local}{rng.randint(1, 9)}@{rng.choice(vocab.EMAIL_DOMAINS)}"
        email = _messy_space(rng, _email_case(rng, email), 0.02)
    elif u < 0.65:
        _, new_last, _ = _person(seed, derive(seed, "new-last", aid, step) % 10**9)
        last = new_last if rng.random() < 0.6 else f"{last.strip()}-{new_last.strip()}"
    elif u < 0.8:
        new_first, _, _ = _person(seed, derive(seed, "new-first", aid, step) % 10**9)
        first = new_first if new_first != first else f"{first} "
    else:
        renamed = _apprenticeship_name(rng, programme)
        name = renamed if renamed != name else f"{renamed.strip()} (renamed)"
    return first, last, email, name


def _project(seed: int, project_id: int, index: int, status: str) -> dict[str, Any]:
    """Uncorrupted project record; its status lives in the dataset."""
    rng = random.Random(derive(seed, "project", project_id))
    title = rng.choice(vocab.PROJECT_KINDS).format(n=index + 1, topic=rng.choice(vocab.PROJECT_TOPICS))
    return {"id": project_id, "title": title, "description": _description(rng), "status": status}


# ---------------------------------------------------------------- building


class _Builder:
    """Mutable state while replaying generation 0 to G."""

    def __init__(self, scale: int, seed: int) -> None:
        self.scale = scale
        self.seed = seed
        self.programme_ids, self.programme_names, self.programme_records = _programmes(seed)
        absent = sorted(set(range(1, PROGRAMME_ID_SPACE + 1)) - set(self.programme_ids))
        self.orphan_targets = absent + list(vocab.ORPHAN_PROGRAMME_IDS_EXTRA)
        self.ids: list[int] = []
        self.versions: list[int] = []
        self.mdates: list[str] = []
        self.first: list[int] = []
        self.count: list[int] = []
        self.statuses = bytearray(1)  # project ids start at 1
        self.next_id = 1
        self.next_pid = 1
        self.duplicates: dict[int, int] = {}
        self.orphans: dict[int, int] = {}

    # -- generation 0

    def base(self) -> None:
        """Generation 0: ``scale`` rows over two years, with gaps and special cases."""
        rng = random.Random(derive(self.seed, "base", self.scale))
        counts = [_project_count(rng) for _ in range(self.scale)]
        self._ensure_special_counts(rng, counts)
        stamps = [BASE_START + int(rng.random() * BASE_SPAN) for _ in range(self.scale)]
        self._append_rows(rng, counts, stamps)
        self._mark_people(rng, range(len(self.ids)), 0.005, force=self.scale >= 10)

    def _ensure_special_counts(self, rng: random.Random, counts: list[int]) -> None:
        """From 10 rows on, at least one apprenticeship without and one with > 40 projects."""
        if len(counts) < 10:
            return
        if not any(c > 40 for c in counts):
            counts[rng.randrange(len(counts))] = rng.randint(41, 90)
        if 0 not in counts:
            candidates = [i for i, c in enumerate(counts) if c <= 40]
            counts[rng.choice(candidates)] = 0

    def _append_rows(self, rng: random.Random, counts: list[int], stamps: list[int]) -> None:
        """Append rows with fresh ids/project ids (gaps included) and their statuses."""
        ids, first, count, versions = self.ids, self.first, self.count, self.versions
        next_id, next_pid = self.next_id, self.next_pid
        random_ = rng.random
        for c in counts:
            if random_() < 0.03:
                next_id += rng.randint(1, 9)  # deleted before anyone saw them
            ids.append(next_id)
            next_id += 1
            if random_() < 0.02:
                next_pid += rng.randint(1, 5)
            first.append(next_pid)
            count.append(c)
            next_pid += c
        versions.extend(itertools.repeat(0, len(counts)))
        self.mdates.extend(map(format_ts, stamps))
        grow = next_pid - len(self.statuses)
        if grow > 0:
            self.statuses.extend(rng.randbytes(grow).translate(_STATUS_TABLE))
        self.next_id, self.next_pid = next_id, next_pid

    def _mark_people(self, rng: random.Random, positions: range, dup_share: float, force: bool) -> None:
        """Same person under two ids, and programme ids that /programmes does not list."""
        if not positions:
            return
        n = len(positions)
        n_dup = int(n * dup_share + 0.5) or (1 if force else 0)
        n_orphan = int(n * 0.003 + 0.5) or (1 if force else 0)
        candidates = [p for p in positions if p > 0]
        for pos in rng.sample(candidates, min(n_dup, len(candidates))):
            self.duplicates[self.ids[pos]] = self.ids[rng.randrange(pos)]
        for pos in rng.sample(list(positions), min(n_orphan, n)):
            self.orphans[self.ids[pos]] = rng.choice(self.orphan_targets)

    # -- generation steps

    def step(self, generation: int) -> None:
        """Go from ``generation - 1`` to ``generation``: delete, modify, re-grade, add."""
        rng = random.Random(derive(self.seed, "generation", self.scale, generation))
        n = len(self.ids)
        window = GENERATION_START + (generation - 1) * GENERATION_SPAN
        self._delete(rng, _share(n, SHARE_DELETED))
        self._modify(rng, _share(n, SHARE_MODIFIED), window)
        self._change_statuses(rng)
        self._add(rng, _share(n, SHARE_ADDED), window)

    def _delete(self, rng: random.Random, k: int) -> None:
        n = len(self.ids)
        if not k or not n:
            return
        keep = bytearray(b"\x01") * n
        for pos in rng.sample(range(n), min(k, n)):
            keep[pos] = 0
        for name in ("ids", "versions", "mdates", "first", "count"):
            setattr(self, name, list(itertools.compress(getattr(self, name), keep)))

    def _modify(self, rng: random.Random, k: int, window: int) -> None:
        for pos in rng.sample(range(len(self.ids)), min(k, len(self.ids))):
            self.versions[pos] += 1
            self.mdates[pos] = format_ts(window + rng.randrange(GENERATION_SPAN))

    def _change_statuses(self, rng: random.Random) -> None:
        """5% of live projects move on (or back); parents' modified_date stays put."""
        cum = list(itertools.accumulate(self.count))
        total = cum[-1] if cum else 0
        statuses = self.statuses
        for idx in rng.sample(range(total), _share(total, SHARE_STATUS_CHANGED)):
            pos = bisect.bisect_right(cum, idx)
            pid = self.first[pos] + idx - (cum[pos - 1] if pos else 0)
            current = statuses[pid]
            if current == 0:
                statuses[pid] = 1
            elif current == 1:
                statuses[pid] = 2 if rng.random() < 0.8 else 0
            else:
                statuses[pid] = 1

    def _add(self, rng: random.Random, k: int, window: int) -> None:
        start = len(self.ids)
        counts = [_project_count(rng) for _ in range(k)]
        stamps = [window + rng.randrange(GENERATION_SPAN) for _ in range(k)]
        self._append_rows(rng, counts, stamps)
        self._mark_people(rng, range(start, len(self.ids)), 0.005, force=False)

    # -- result

    def finish(self, generation: int, corrupt_rate: float) -> Dataset:
        rows = [
            orjson.dumps(corrupt_record("programme", rec, rec["id"], self.seed, corrupt_rate) if corrupt_rate else rec)
            for rec in self.programme_records
        ]
        live = set(self.ids)
        ds = Dataset(
            seed=self.seed,
            scale=self.scale,
            generation=generation,
            corrupt_rate=corrupt_rate,
            programme_rows=rows,
            programme_ids=self.programme_ids,
            programme_names=self.programme_names,
            ids=array("q", self.ids),
            versions=array("I", self.versions),
            mdates=self.mdates,
            proj_first=array("q", self.first),
            proj_count=array("I", self.count),
            statuses=self.statuses,
            duplicates={k: v for k, v in self.duplicates.items() if k in live},
            orphans={k: v for k, v in self.orphans.items() if k in live},
        )
        if corrupt_rate:
            ds.served_dates = _served_dates(ds)
        return ds


def _served_dates(ds: Dataset) -> list[Optional[str]]:
    """``modified_date`` as served (corruption applied); None where it is not a string."""
    served: list[Optional[str]] = list(ds.mdates)
    for pos, aid in enumerate(ds.ids):
        kind = corruption_of("apprenticeship", aid, ds.seed, ds.corrupt_rate)
        if kind is None:
            continue
        value = ds.apprenticeship_record(pos).get("modified_date")
        served[pos] = value if isinstance(value, str) else None
    return served


def build_dataset(scale: int, seed: int, generation: int, corrupt_rate: float = 0.0) -> Dataset:
    """Build the data one server process serves (deterministic in all four arguments)."""
    started = time.perf_counter()
    builder = _Builder(scale, seed)
    builder.base()
    for g in range(1, generation + 1):
        builder.step(g)
    ds = builder.finish(generation, corrupt_rate)
    log.info(
        "built dataset scale=%d seed=%d generation=%d: %d apprenticeships, %d projects, %d programmes in %.2fs",
        scale,
        seed,
        generation,
        len(ds),
        ds.project_total,
        len(ds.programme_rows),
        time.perf_counter() - started,
    )
    return ds
