"""JSON the API may have made hostile, read and written back without losing a value, crashing or recursing.

orjson is the fast path, but it reads an integer beyond 64 bits as a float (silently: 2**64 becomes
1.8446744073709552e19), refuses a number beyond the double range ("1e400", 1,500 digits: "number is infinity
when parsed as double"), nesting deeper than 1,024 levels and lone surrogates ("\\ud800"); the stdlib recurses
(RecursionError past ~1,000 levels) and refuses integers of more than 4,300 digits. All of these are valid JSON,
so an API may send them.

`loads` takes orjson's reading when it is exact, and otherwise reads the document with a small iterative parser
that takes any valid JSON: integers of any size (beyond MAX_INT_DIGITS digits, and numbers a float cannot hold,
as `RawJson`), lone surrogates (as the stdlib does), and any nesting (containers deeper than MAX_DEPTH are kept
as one `RawJson` of their compact text, so memory stays a small multiple of the text). `dumps` writes such
values back: compact, ASCII-escaped (a lone surrogate stays a valid "\\ud800" escape), the same bytes as
`json.dumps(value, separators=(",", ":"), ensure_ascii=True)` for ordinary values, without recursing.
`members` and `items` cut an object or an array into its values' exact texts, checked but not rewritten (the
transform splits a landing line Spark's reader refuses with them).
"""

from __future__ import annotations

import json
import json.decoder
import json.encoder
import math
import re
from typing import Any, Iterator, Union

import orjson

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "RawJson", "dumps", "items", "loads", "members"]

MAX_INT_DIGITS = 4000  # Python refuses int() of more than 4,300 digits (and the conversion is quadratic)
MAX_DEPTH = 500  # containers nested deeper are kept as text (Spark's JSON reader stops at 1,000 levels anyway)

_DIGIT_MAP = bytes(0x30 if 0x30 <= b <= 0x39 else 0x78 for b in range(256))  # digits -> "0", anything else -> "x"
_LONG_DIGIT_RUN = b"0" * 19  # an integer orjson turns into a float has 19 digits or more (< -2**63, > 2**64-1)

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_COMPACT_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[^ \t\n\r"]+')
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]  # public since Python 2, untyped
_encode_string = json.encoder.encode_basestring_ascii


class RawJson:
    """A JSON value kept as its compact text: a number Python would lose or cannot hold, or a subtree nested
    deeper than MAX_DEPTH. `dumps` writes the text back unchanged."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        shown = self.text if len(self.text) <= 60 else f"{self.text[:40]}…({len(self.text)} chars)"
        return f"RawJson({shown!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawJson) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def loads(data: Union[bytes, str]) -> Any:
    """The document as Python values, exactly (RawJson where Python cannot hold a value); ValueError when `data`
    is not JSON (or not UTF-8)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    else:
        if _LONG_DIGIT_RUN not in raw.translate(_DIGIT_MAP):  # no integer orjson could have turned into a float
            return value
    return _parse(data if isinstance(data, str) else data.decode("utf-8"))


def members(text: str) -> list[tuple[str, str]]:
    """A JSON object's members as (key, the value's exact text), in order; ValueError when `text` is not one
    valid JSON object. Checked like `loads`, but no value is built: a value's text is as it stands in `text`."""
    return [(str(key), value) for key, value in _values(text, "{")]


def items(text: str) -> list[str]:
    """A JSON array's items as their exact texts, in order; ValueError when `text` is not one valid JSON array."""
    return [value for _, value in _values(text, "[")]


def _values(text: str, opener: str) -> list[tuple[str | None, str]]:
    """The values of the one object (`{`) or array (`[`) that `text` is, as (key or None, exact text)."""
    keyed, closer = opener == "{", "}" if opener == "{" else "]"
    at = _skip(text, 0)
    if text[at : at + 1] != opener:
        raise _fail(text, at, "Expecting an object" if keyed else "Expecting an array")
    found: list[tuple[str | None, str]] = []
    at = _skip(text, at + 1)
    if text[at : at + 1] == closer:
        at += 1
    else:
        while True:
            key, at = _key(text, at) if keyed else (None, at)
            end = _skip_value(text, at)
            found.append((key, text[at:end].rstrip(" \t\n\r")))
            if text[end : end + 1] == ",":
                at = _skip(text, end + 1)
                continue
            if text[end : end + 1] != closer:
                raise _fail(text, end, "Expecting ',' delimiter")
            at = end + 1
            break
    if _skip(text, at) != len(text):
        raise _fail(text, at, "Extra data")
    return found


def _fail(text: str, at: int, what: str) -> ValueError:
    return json.JSONDecodeError(what, text, min(at, len(text)))


def _skip(text: str, at: int) -> int:
    return _WHITESPACE.match(text, at).end()  # type: ignore[union-attr]  # matches the empty string


def _key(text: str, at: int) -> tuple[str, int]:
    """A member's key and the index of its value (after the colon and white space)."""
    if text[at : at + 1] != '"':
        raise _fail(text, at, "Expecting property name enclosed in double quotes")
    key, at = _scanstring(text, at + 1, True)
    at = _skip(text, at)
    if text[at : at + 1] != ":":
        raise _fail(text, at, "Expecting ':' delimiter")
    return key, _skip(text, at + 1)


def _scalar(text: str, at: int) -> tuple[Any, int]:
    """The string, number or literal at `at`, and the index after it."""
    char = text[at : at + 1]
    if char == '"':
        return _scanstring(text, at + 1, True)
    if char == "-" or "0" <= char <= "9":
        match = _NUMBER.match(text, at)
        if match is None:
            raise _fail(text, at, "Expecting value")
        number = match.group()
        if match.group(1) is None and match.group(2) is None:
            digits = len(number) - (number[0] == "-")
            return (int(number) if digits <= MAX_INT_DIGITS else RawJson(number)), match.end()
        value = float(number)
        return (value if math.isfinite(value) else RawJson(number)), match.end()
    literals: tuple[tuple[str, Any], ...] = (("true", True), ("false", False), ("null", None))
    for literal, constant in literals:
        if text.startswith(literal, at):
            return constant, at + len(literal)
    raise _fail(text, at, "Expecting value")


def _parse(text: str) -> Any:
    """Any valid JSON document, iteratively: no recursion, whatever the nesting."""
    stack: list[tuple[Any, Any]] = []  # (open container, the key its next value goes under; None for a list)
    at = _skip(text, 0)
    while True:
        char = text[at : at + 1]
        if char == "{" or char == "[":
            if len(stack) >= MAX_DEPTH:
                end = _skip_value(text, at)
                value: Any = RawJson("".join(_COMPACT_TOKEN.findall(text, at, end)))
                at = end
            else:
                at = _skip(text, at + 1)
                closer = "}" if char == "{" else "]"
                if text[at : at + 1] == closer:
                    value, at = ({} if char == "{" else []), at + 1
                elif char == "{":
                    key, at = _key(text, at)
                    stack.append(({}, key))
                    continue
                else:
                    stack.append(([], None))
                    continue
        else:
            value, at = _scalar(text, at)
        while True:  # put the value in its container; close every container that ends here
            at = _skip(text, at)
            if not stack:
                if at != len(text):
                    raise _fail(text, at, "Extra data")
                return value
            container, key = stack[-1]
            if key is None:
                container.append(value)
            else:
                container[key] = value
            char = text[at : at + 1]
            if char == ",":
                at = _skip(text, at + 1)
                if key is not None:
                    key, at = _key(text, at)
                    stack[-1] = (container, key)
                break
            if char != ("]" if key is None else "}"):
                raise _fail(text, at, "Expecting ',' delimiter")
            stack.pop()
            value, at = container, at + 1


def _skip_value(text: str, at: int) -> int:
    """The index after the valid JSON value at `at`, checked but not built (one byte per open container)."""
    kinds = bytearray()  # b"{" or b"[" per open container
    while True:
        char = text[at : at + 1]
        if char == "{" or char == "[":
            at = _skip(text, at + 1)
            if text[at : at + 1] == ("}" if char == "{" else "]"):
                at += 1
            else:
                kinds.append(ord(char))
                if char == "{":
                    at = _key(text, at)[1]
                continue
        else:
            at = _scalar(text, at)[1]
        while True:
            at = _skip(text, at)
            if not kinds:
                return at
            char = text[at : at + 1]
            if char == ",":
                at = _skip(text, at + 1)
                if kinds[-1] == 0x7B:
                    at = _key(text, at)[1]
                break
            if char != ("}" if kinds[-1] == 0x7B else "]"):
                raise _fail(text, at, "Expecting ',' delimiter")
            kinds.pop()
            at += 1


def _scalar_text(value: Any) -> str:
    if type(value) is str:
        return _encode_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not JSON")
        return float.__repr__(value)
    if isinstance(value, RawJson):
        return value.text
    if isinstance(value, str):
        return _encode_string(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact, ASCII-only JSON of `value` (dicts, lists, str, int, float, bool, None, RawJson), iteratively."""
    out: list[str] = []
    # Open containers: [their remaining items, closer, is a dict, nothing written yet]
    stack: list[list[Any]] = []
    while True:
        if isinstance(value, dict):
            out.append("{")
            items: Iterator[Any] = iter(sorted(value.items()) if sort_keys else value.items())
            stack.append([items, "}", True, True])
        elif isinstance(value, (list, tuple)):
            out.append("[")
            stack.append([iter(value), "]", False, True])
        else:
            out.append(_scalar_text(value))
        while stack:
            top = stack[-1]
            item: Any = next(top[0], _END)
            if item is _END:
                out.append(top[1])
                stack.pop()
                continue
            if top[3]:
                top[3] = False
            else:
                out.append(",")
            if top[2]:
                name, value = item
                if not isinstance(name, str):
                    raise TypeError(f"keys must be str, not {type(name).__name__}")
                out.append(_encode_string(name))
                out.append(":")
            else:
                value = item
            break
        else:
            return "".join(out).encode("ascii")


_END: Any = object()
