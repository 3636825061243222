"""Which apprenticeships (parents of projects) are known and done, in little memory.

Ids are small non-negative integers in practice, so a bitmap holds a million of them in
125 KB; anything else (huge or negative ids) falls back to a set.
"""

from __future__ import annotations

from typing import Any, Optional

_BITMAP_SOFT_LIMIT = 64 * 1024 * 1024  # ids above this many bits go to the set, keeping the bitmap <= 8 MB


class ParentSet:
    """A set of apprenticeship ids: `add` says whether the id is new."""

    __slots__ = ("_bits", "_other", "count")

    def __init__(self) -> None:
        self._bits = bytearray()
        self._other: set[int] = set()
        self.count = 0

    def add(self, parent: int) -> bool:
        if 0 <= parent < _BITMAP_SOFT_LIMIT:
            byte, bit = parent >> 3, 1 << (parent & 7)
            bits = self._bits
            if byte >= len(bits):
                bits.extend(bytes(max(byte + 1 - len(bits), len(bits))))
            if bits[byte] & bit:
                return False
            bits[byte] |= bit
        else:
            if parent in self._other:
                return False
            self._other.add(parent)
        self.count += 1
        return True

    def __contains__(self, parent: int) -> bool:
        if 0 <= parent < _BITMAP_SOFT_LIMIT:
            byte = parent >> 3
            return byte < len(self._bits) and bool(self._bits[byte] & (1 << (parent & 7)))
        return parent in self._other

    def __len__(self) -> int:
        return self.count


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def parent_id(record: Any) -> Optional[int]:
    """The apprenticeship id a projects URL can be built from, or None (null, missing, 'A-17', a float, or out of
    the 64-bit range the lake keys on: such a record is landed for the transform to quarantine, not listed)."""
    if type(record) is not dict:
        return None
    value = record.get("id")
    if type(value) is int:
        return value if INT64_MIN <= value <= INT64_MAX else None
    if type(value) is str:
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= INT64_MAX:
            return int(text)
    return None
