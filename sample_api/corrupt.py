"""Records that break the contract, for testing an extractor's quarantine.

Whether a record is corrupted, and how, is a pure function of ``(seed, entity, id)``:
the server and ``dump`` agree exactly, and a bad record stays bad across generations
(as a bad row in a real source does until someone fixes it). Nothing in a corrupted
record says it is corrupted.

Kinds (per entity, where they make sense):

* ``missing_field`` – one field is absent (any field, ``id`` included);
* ``wrong_type`` – ``id``/``programme_id``/``duration`` as a non-numeric string, or a
  text field as a number;
* ``unknown_status`` – projects only: a status outside pending/submitted/graded;
* ``bad_date`` – apprenticeships only: ``modified_date`` that is not a
  ``YYYY-MM-DDTHH:MM:SS`` date (it still takes part in the string comparison of
  ``modified_after``);
* ``null_id`` – ``"id": null``.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

from . import vocab

KINDS: dict[str, tuple[str, ...]] = {
    "apprenticeship": ("missing_field", "wrong_type", "bad_date", "null_id"),
    "project": ("missing_field", "wrong_type", "unknown_status", "null_id"),
    "programme": ("missing_field", "wrong_type", "null_id"),
}

_WRONG_TYPES: dict[str, tuple[tuple[str, str], ...]] = {
    # (field, how): "tag" -> "<TAG>-<value>" string, "int" -> a number instead of text
    "apprenticeship": (("id", "A"), ("programme_id", "PRG"), ("first_name", "int")),
    "project": (("id", "P"), ("title", "int")),
    "programme": (("duration", "months"), ("id", "PRG")),
}


def _hash(seed: int, entity: str, record_id: int) -> int:
    text = f"{seed}|corrupt|{entity}|{record_id}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def corruption_of(entity: str, record_id: int, seed: int, rate: float) -> Optional[str]:
    """The corruption kind of one record, or None if it is served intact."""
    if rate <= 0.0:
        return None
    h = _hash(seed, entity, record_id)
    if (h & 0xFFFFFFFF) / 4294967296.0 >= rate:
        return None
    kinds = KINDS[entity]
    return kinds[(h >> 32) % len(kinds)]


def corrupt_record(entity: str, record: dict[str, Any], record_id: int, seed: int, rate: float) -> dict[str, Any]:
    """``record`` as served: a corrupted copy, or ``record`` itself when intact."""
    kind = corruption_of(entity, record_id, seed, rate)
    if kind is None:
        return record
    detail = _hash(seed, entity, record_id) >> 40
    out = dict(record)
    if kind == "missing_field":
        del out[list(out)[detail % len(out)]]
    elif kind == "wrong_type":
        name, how = _WRONG_TYPES[entity][detail % len(_WRONG_TYPES[entity])]
        out[name] = _wrong_value(out[name], how, detail)
    elif kind == "unknown_status":
        out["status"] = vocab.UNKNOWN_STATUSES[detail % len(vocab.UNKNOWN_STATUSES)]
    elif kind == "bad_date":
        out["modified_date"] = vocab.BAD_DATES[detail % len(vocab.BAD_DATES)]
    elif kind == "null_id":
        out["id"] = None
    return out


def _wrong_value(value: Any, how: str, detail: int) -> Any:
    if how == "int":
        return 10_000 + detail % 90_000
    if how == "months":
        return f"{value} months"
    return f"{how}-{value}"
