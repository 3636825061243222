"""The oracle: an independent Python model of the contract and the cleaning, and of what silver, quarantine and
gold must hold for a ground truth (`sample_api.dump.ground_truth`), written from the docs, not from the Spark code.

Projects of an apprenticeship whose id is unusable (null, missing, not an integer: a corrupt source row) cannot be
listed by anyone, so they are not expected anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any, Optional

TS = "yyyy-MM-dd'T'HH:mm:ss"
WHITE_SPACE = (
    "\u0009\u000a\u000b\u000c\u000d\u0020\u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z"
)
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\Z")
STATUSES = ("pending", "submitted", "graded")
# The API contract, field order as served: (name, json type, role).
CONTRACT = {
    "apprenticeships": (
        ("id", "integer", "id"),
        ("name", "string", ""),
        ("programme_id", "integer", ""),
        ("modified_date", "string", "timestamp"),
        ("first_name", "string", ""),
        ("last_name", "string", ""),
        ("email_address", "string", ""),
    ),
    "projects": (
        ("id", "integer", "id"),
        ("title", "string", ""),
        ("description", "string", ""),
        ("status", "string", "status"),
    ),
    "programmes": (
        ("id", "integer", "id"),
        ("name", "string", ""),
        ("duration", "integer", "duration"),
        ("description", "string", ""),
    ),
}
ENTITIES = ("apprenticeships", "projects", "programmes")
# The sample API's corruption kinds and the quarantine reason each must give (`{field}`: the field it hit).
REASON_OF_KIND = {
    "missing_field": "missing_field:{field}",
    "wrong_type": "wrong_type:{field}",
    "bad_date": "unparseable_date:modified_date",
    "null_id": "null_value:id",
    "unknown_status": "unknown_status:status",
}


# ---------------------------------------------------------------- a Python model of the transform


def _text(v: Any) -> Optional[str]:
    return None if v is None else unicodedata.normalize("NFC", v.strip(WHITE_SPACE))


def _email(v: str) -> str:
    return unicodedata.normalize("NFC", v.strip(WHITE_SPACE).lower())


def _int64(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63


def _timestamp(v: str) -> Optional[str]:
    text = v.strip(WHITE_SPACE)
    if not TIMESTAMP.match(text):
        return None
    try:
        dt.datetime.strptime(("2000" if text[:4] == "0000" else text[:4]) + text[4:], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return text


def contract_reasons(entity: str, record: Any) -> list[str]:
    """Every reason `record` breaks the API contract, in the transform's order (an empty list: valid)."""
    if not isinstance(record, dict):
        return ["not_a_json_object"]
    reasons = []
    for name, json_type, role in CONTRACT[entity]:
        if name not in record:
            reasons.append(f"missing_field:{name}")
            continue
        value = record[name]
        if value is None:
            reasons.append(f"null_value:{name}")
            continue
        if json_type == "integer":
            wrong = not _int64(value)
        else:
            wrong = not isinstance(value, str)
        if wrong:
            reasons.append(f"wrong_type:{name}")
            continue
        if role == "timestamp" and _timestamp(value) is None:
            reasons.append(f"unparseable_date:{name}")
        if role == "status" and value.strip(WHITE_SPACE).lower() not in STATUSES:
            reasons.append(f"unknown_status:{name}")
        if role == "duration" and value < 0:
            reasons.append(f"negative_value:{name}")
    return reasons


def canonical(record: Any, parent: Optional[int] = None) -> str:
    """One record as comparable text (keys sorted; projects with their parent id)."""
    if isinstance(record, dict) and parent is not None:
        record = {**record, "apprenticeship_id": parent}
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def usable_parent(record: dict) -> Optional[int]:
    """The id the extractor can list projects for (an integer), else None."""
    value = record.get("id") if isinstance(record, dict) else None
    return value if _int64(value) and value >= 0 else None


@dataclass
class Reference:
    """What the lake must hold after loading the ground truth: per layer, per entity."""

    served: dict[str, Counter]  # entity -> Counter(canonical record) of every record the API serves (bronze)
    silver: dict[str, dict[tuple, tuple]]  # entity -> key -> business values
    quarantine: dict[str, Counter]  # entity -> Counter((canonical record, reasons))
    gold_apprenticeships: dict[tuple, tuple]
    gold_projects: dict[tuple, tuple]
    unreachable_projects: int = 0

    def expected_records(self, entity: str) -> int:
        return sum(self.served[entity].values())


def reference_lake(truth: dict[str, list[dict]]) -> Reference:
    """The model of one full load of `truth` into an empty lake (or into a lake whose live rows it replaces)."""
    parents = {usable_parent(a) for a in truth["apprenticeships"]} - {None}
    projects = [p for p in truth["projects"] if p["apprenticeship_id"] in parents]
    records = {
        "apprenticeships": [(a, None) for a in truth["apprenticeships"]],
        "projects": [
            ({k: v for k, v in p.items() if k != "apprenticeship_id"}, p["apprenticeship_id"]) for p in projects
        ],
        "programmes": [(p, None) for p in truth["programmes"]],
    }
    served = {e: Counter(canonical(r, parent) for r, parent in records[e]) for e in ENTITIES}
    silver: dict[str, dict[tuple, tuple]] = {e: {} for e in ENTITIES}
    quarantine: dict[str, Counter] = {e: Counter() for e in ENTITIES}
    for entity in ENTITIES:
        for record, parent in records[entity]:
            reasons = contract_reasons(entity, record)
            if reasons:
                quarantine[entity][(canonical(record, parent), tuple(reasons))] += 1
                continue
            if entity == "apprenticeships":
                email = _email(record["email_address"])
                value = (
                    _text(record["name"]),
                    record["programme_id"],
                    _timestamp(record["modified_date"]),
                    _text(record["first_name"]),
                    _text(record["last_name"]),
                    email,
                    bool(EMAIL.match(email)) and len(email) <= 254,
                )
                key: tuple = (record["id"],)
            elif entity == "projects":
                value = (
                    _text(record["title"]),
                    _text(record["description"]),
                    record["status"].strip(WHITE_SPACE).lower(),
                )
                key = (parent, record["id"])
            else:
                value = (_text(record["name"]), record["duration"], _text(record["description"]))
                key = (record["id"],)
            silver[entity][key] = value
    gold_a, gold_p = reference_gold(silver)
    return Reference(served, silver, quarantine, gold_a, gold_p, len(truth["projects"]) - len(projects))


def _month(ts: str) -> dt.date:
    return dt.date(int(ts[:4]), int(ts[5:7]), 1)


def reference_gold(silver: dict[str, dict[tuple, tuple]]) -> tuple[dict, dict]:
    """Both gold tables (key -> values, `lake.GOLD_COLUMNS` order) as the joins of live silver rows, in plain Python."""
    programmes = {k[0]: v for k, v in silver["programmes"].items()}
    counts: dict[int, Counter] = {}
    for (aid, _pid), (_t, _d, status) in silver["projects"].items():
        counts.setdefault(aid, Counter())[status] += 1
    gold_a = {}
    for (aid,), (name, programme_id, modified, first, last, email, valid) in silver["apprenticeships"].items():
        programme = programmes.get(programme_id)
        c = counts.get(aid, Counter())
        total = sum(c.values())
        gold_a[(aid,)] = (
            name,
            programme_id,
            modified,
            first,
            last,
            email,
            valid,
            programme[0] if programme else None,
            programme[1] if programme else None,
            programme is not None,
            total,
            c["pending"],
            c["submitted"],
            c["graded"],
            total > 0,
            _month(modified),
        )
    gold_p = {}
    for (aid, pid), (title, description, status) in silver["projects"].items():
        parent = silver["apprenticeships"].get((aid,))
        if parent is None:
            gold_p[(pid, aid)] = (
                title,
                description,
                status,
                False,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                False,
                None,
                None,
                None,
                None,
            )
            continue
        name, programme_id, modified, first, last, email, valid = parent
        programme = programmes.get(programme_id)
        gold_p[(pid, aid)] = (
            title,
            description,
            status,
            True,
            name,
            first,
            last,
            email,
            valid,
            modified,
            programme_id,
            programme is not None,
            *(programme if programme else (None, None, None)),
            _month(modified),
        )
    return gold_a, gold_p
