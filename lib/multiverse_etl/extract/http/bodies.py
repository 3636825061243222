"""Reading what the API answered: a page body, or a short secret-free description of something that is not one."""

from __future__ import annotations

import asyncio
import re
from typing import Any, Optional

from ... import jsonsafe
from ..errors import ApiError, ResponseTooLarge
from ..redaction import redact

DETAIL_CHARS = 200


def too_large(what: str, limit: int, seen: str) -> ResponseTooLarge:
    """The refusal of a body over api.max_response_bytes (`seen`: how it was known), naming the page."""
    return ResponseTooLarge(
        f"{what}: the answer is larger than api.max_response_bytes = {limit} bytes after decompression "
        f"({seen}); refused. Lower api.page_size, or raise api.max_response_bytes if such pages are expected"
    )


def parse_page(body: bytes) -> Optional[dict[str, Any]]:
    """The page as a dict with a list 'data' and a dict 'pagination', or None if it is not one."""
    try:  # any valid JSON: huge numbers, deep nesting, lone surrogates (jsonsafe); never a RecursionError
        doc = jsonsafe.loads(body)
    except ValueError:  # not JSON, or not UTF-8
        return None
    if type(doc) is not dict or type(doc.get("data")) is not list or type(doc.get("pagination")) is not dict:
        return None
    return doc


def error_detail(body: bytes, secrets: tuple[str, ...]) -> str:
    """An error body's `detail` (or its start), one line, secrets redacted, for messages."""
    text = body[: DETAIL_CHARS * 2].decode("utf-8", "replace")
    try:
        detail = jsonsafe.loads(body).get("detail", text)
        text = detail if isinstance(detail, str) else jsonsafe.dumps(detail)[: DETAIL_CHARS * 2].decode()
    except (ValueError, AttributeError, TypeError):
        pass
    return redact(" ".join(text.split())[:DETAIL_CHARS] or "<empty body>", secrets)


def snippet(body: bytes, limit: int = 120) -> str:
    """The start of an unexpected body, tags and runs of white space removed, for the error message."""
    text = re.sub(r"<[^>]*>", " ", body[:2000].decode("utf-8", "replace"))
    text = " ".join(text.split())
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def describe(exc: BaseException) -> str:
    """Exception class (and OS reason), never the exception's message: one could carry a URL we do not want in logs."""
    if isinstance(exc, asyncio.TimeoutError):
        return f"timeout ({type(exc).__name__})"
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return f"{type(exc).__name__}: {os_error.strerror}"
    return type(exc).__name__


def untrusted_certificate(exc: BaseException, display_url: str, path: str) -> ApiError:
    """A bad certificate will not fix itself: no retry, say what is wrong and what to do."""
    reason = getattr(exc, "certificate_error", None) or type(exc).__name__
    return ApiError(
        f"the TLS certificate of {display_url} is not trusted ({reason}); fix the certificate "
        f"or its CA bundle, or (never in production) set api.verify_tls: false",
        path=path,
    )
