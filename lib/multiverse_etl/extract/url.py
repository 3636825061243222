"""The API's base URL as requests are built from it: normalised and percent-encoded once (urllib.parse only).

`encoded(url)` is the form every request target and message is built from: scheme and host lower-cased (a host
that is not ASCII in its IDNA form), the scheme's default port dropped, the path and user info percent-encoded
where RFC 3986 requires it; an escape of a character that may stand as it is is decoded (`%7E` is `~`), except
`%2F` and `%2B` in the path (they mean something else unencoded), and a lone `%` becomes `%25`. `path_of` is the
encoded path ("/" when there is none), `without_userinfo` the URL without any `user:password@` part (for logs and
messages). This is what yarl's `URL` did here, so aiohttp is not needed at run time (tests/test_url.py compares).
"""

from __future__ import annotations

import re
import string
from urllib.parse import urlsplit, urlunsplit

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_SUB_DELIMS = "!$&'()*+,;="
_PATH = _UNRESERVED | frozenset(_SUB_DELIMS + ":@/")
_PATH_PROTECTED = frozenset("/+")  # kept encoded when they came encoded
_QUERY = _UNRESERVED | frozenset(_SUB_DELIMS + ":@/?")
_QUERY_PROTECTED = frozenset("=+&;")
_USER = _UNRESERVED | frozenset("!$'()*")
_TOKEN = re.compile(r"%[0-9A-Fa-f]{2}|[\s\S]")
_DEFAULT_PORT = {"http": 80, "https": 443}


def _requote(part: str, allowed: frozenset[str], protected: frozenset[str] = frozenset()) -> str:
    out = []
    for token in _TOKEN.findall(part):
        if len(token) == 3:  # an escape
            char = chr(int(token[1:], 16))
            out.append(char if char in allowed and char not in protected else token.upper())
        elif token in allowed:
            out.append(token)
        else:
            out.append("".join(f"%{byte:02X}" for byte in token.encode("utf-8")))
    return "".join(out)


def _netloc(url: str, with_userinfo: bool) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    elif not host.isascii():
        host = host.encode("idna").decode("ascii")
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORT.get(parts.scheme.lower()) else f"{host}:{port}"
    if with_userinfo and (parts.username is not None or parts.password is not None):
        userinfo = _requote(parts.username or "", _USER)
        if parts.password is not None:
            userinfo += ":" + _requote(parts.password, _USER)
        netloc = f"{userinfo}@{netloc}"
    return netloc


def encoded(url: str) -> str:
    """`url` normalised and percent-encoded (see the module's docstring)."""
    parts = urlsplit(url)
    return urlunsplit(
        (
            parts.scheme.lower(),
            _netloc(url, with_userinfo=True),
            _requote(parts.path, _PATH, _PATH_PROTECTED),
            _requote(parts.query, _QUERY, _QUERY_PROTECTED),
            _requote(parts.fragment, _QUERY),
        )
    )


def path_of(url: str) -> str:
    """The encoded path of `url` ("/" when it has none)."""
    return urlsplit(encoded(url)).path or "/"


def without_userinfo(url: str) -> str:
    """`url` without any `user:password@` part; unchanged when it has none."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=_netloc(url, with_userinfo=False)))
