"""Secrets that cannot leak by accident: a wrapper that never prints itself, and log scrubbing."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterable, Iterator, Optional

from .url import encoded, without_userinfo

MASK = "***"


class Secret:
    """A string that shows as *** in repr, str, f-strings and tracebacks; `.reveal()` is explicit."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret holds a string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # pickling would write the value somewhere unexpected
        raise TypeError("a Secret cannot be pickled")

    def __bool__(self) -> bool:
        return bool(self._value)


def redact(text: str, secrets: Iterable[Optional[str]]) -> str:
    """`text` with every (non-trivial) secret value replaced by ***."""
    for value in secrets:
        if value and len(value) >= 4 and value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that scrubs known secret values from every record that passes it."""

    def __init__(self) -> None:
        super().__init__()
        self._values: set[str] = set()

    def add(self, value: Optional[str]) -> None:
        if value and len(value) >= 4:
            self._values.add(value)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._values:
            message = record.getMessage()
            scrubbed = redact(message, self._values)
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text, self._values)
            if scrubbed != message:
                record.msg, record.args = scrubbed, None
            for key, value in list(vars(record).items()):  # fields from extra=... (the JSON format shows them)
                if isinstance(value, str) and key not in ("msg", "exc_text"):
                    setattr(record, key, redact(value, self._values))
        return True


@contextlib.contextmanager
def scrubbed_logs(redactor: RedactingFilter) -> Iterator[RedactingFilter]:
    """Attach `redactor` to every root handler for the duration (belt and braces: nothing logs secrets)."""
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(redactor)
    try:
        yield redactor
    finally:
        for handler in handlers:
            handler.removeFilter(redactor)


def safe_url(url: str) -> str:
    """The URL without any user:password@ part (for logs and the manifest)."""
    stripped = without_userinfo(url)
    return url if stripped == url else without_userinfo(encoded(url))
