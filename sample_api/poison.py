"""Hostile records (``--poison``): valid JSON that breaks naive readers, served among the normal ones.

Each is valid JSON (RFC 8259 sets no limit on a number's size, the nesting or a string's length, and a
``\\ud800`` escape is a valid escape), so an extractor must land it, or refuse its page clearly, never crash;
the transform then quarantines it. They are written here as JSON text, byte for byte what is served:

* apprenticeships (on the first page of ``/apprenticeships``, whatever the page size, when ``modified_after``
  lets their ``modified_date`` through): ids of 2**64, of 23 digits and of 2**63 (outside the 64-bit signed range
  the lake keys on), a ``programme_id`` of 1,500 digits, a ``name`` nested 1,100 levels deep, a 1 MB
  ``last_name``, lone surrogates in ``first_name``;
* projects (the first page of ``/apprenticeships/{POISON_PARENT}/projects``, a poisoned apprenticeship's
  list): an id of 2**64, a ``description`` nested 1,100 levels deep, a lone surrogate in ``title``;
* programmes (the first page of ``/programmes``): a ``duration`` of 1,500 digits, a lone surrogate in ``name``.

Poison records are not part of the ground truth (``dump``): they are extra rows, one page longer.
"""

from __future__ import annotations

from typing import Optional

POISON_DATE = "2024-01-01T00:00:00"
POISON_PARENT = 900_000_001  # a poisoned apprenticeship with a valid id: its projects list is poisoned too

_DEEP = "[" * 1100 + '"deep"' + "]" * 1100
_DIGITS_1500 = "1" + "7" * 1499


def _apprenticeship(record_id: str, **fields: str) -> bytes:
    values = {
        "id": record_id,
        "name": '"Poisoned apprenticeship"',
        "programme_id": "1",
        "modified_date": f'"{POISON_DATE}"',
        "first_name": '"Poison"',
        "last_name": '"Record"',
        "email_address": '"poison@example.com"',
        **fields,
    }
    return ("{" + ",".join(f'"{name}":{value}' for name, value in values.items()) + "}").encode()


def _project(record_id: str, **fields: str) -> bytes:
    values = {"id": record_id, "title": '"Poisoned project"', "description": '"x"', "status": '"pending"', **fields}
    return ("{" + ",".join(f'"{name}":{value}' for name, value in values.items()) + "}").encode()


APPRENTICESHIPS: tuple[bytes, ...] = (
    _apprenticeship(str(2**64)),
    _apprenticeship("12345678901234567890123"),
    _apprenticeship(str(2**63)),
    _apprenticeship(str(POISON_PARENT), programme_id=_DIGITS_1500),
    _apprenticeship("900000002", name=_DEEP),
    _apprenticeship("900000003", last_name='"' + "x" * 1_000_000 + '"'),
    _apprenticeship("900000004", first_name='"An\\ud800n\\udfff"'),
)
PROJECTS: tuple[bytes, ...] = (
    _project(str(2**64)),
    _project("900000012", description=_DEEP),
    _project("900000013", title='"Lone \\udc00 surrogate"'),
)
PROGRAMMES: tuple[bytes, ...] = (
    b'{"id":900000021,"name":"Poisoned programme","duration":' + _DIGITS_1500.encode() + b',"description":"x"}',
    b'{"id":900000022,"name":"Lone \\ud800","duration":12,"description":"x"}',
)


def poison_rows(
    entity: str, offset: int, *, modified_after: Optional[str] = None, apprenticeship_id: Optional[int] = None
) -> tuple[bytes, ...]:
    """The poison rows served after the normal rows of a page (only a list's first page has any)."""
    if offset != 0:
        return ()
    if entity == "apprenticeships":
        return APPRENTICESHIPS if modified_after is None or POISON_DATE > modified_after else ()
    if entity == "projects":
        return PROJECTS if apprenticeship_id == POISON_PARENT else ()
    if entity == "programmes":
        return PROGRAMMES
    return ()
