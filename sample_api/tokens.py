"""Opaque pagination tokens and login tokens.

A pagination token is the row offset, encrypted and authenticated with a key made when
the app is created (once per server process), like the original: a token from an
earlier process, or any garbage, is rejected and the request answers 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import threading
from typing import Optional

# What the original hands out forever; clients must still treat it as opaque.
FIXED_ACCESS_TOKEN = "mv-sample-7a1c4e9f2b6d4c08a3e5f1b29d7c6e40"

_NONCE = 6
_MAC = 10
_RAW_LEN = _NONCE + 8 + _MAC


class TokenError(Exception):
    """A pagination token this process did not make, or an offset it cannot encode."""


class TokenCodec:
    """Encrypt-then-MAC of a non-negative offset (keyed BLAKE2b, stdlib only)."""

    def __init__(self, key: Optional[bytes] = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def encode(self, offset: int) -> str:
        """Token for ``offset``; negative offsets fail like the original's arithmetic."""
        try:
            plain = struct.pack(">Q", offset)
        except struct.error as exc:
            raise TokenError(f"cannot encode offset {offset}") from exc
        nonce = secrets.token_bytes(_NONCE)
        cipher = bytes(a ^ b for a, b in zip(plain, self._stream(nonce)))
        raw = nonce + cipher + self._mac(nonce + cipher)
        return base64.urlsafe_b64encode(raw).decode("ascii")

    def decode(self, token: str) -> int:
        """Offset inside ``token``; TokenError if it is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            raise TokenError("malformed token") from exc
        if len(raw) != _RAW_LEN:
            raise TokenError("malformed token")
        nonce, cipher, mac = raw[:_NONCE], raw[_NONCE : _NONCE + 8], raw[_NONCE + 8 :]
        if not hmac.compare_digest(mac, self._mac(nonce + cipher)):
            raise TokenError("token from another process or tampered")
        plain = bytes(a ^ b for a, b in zip(cipher, self._stream(nonce)))
        return struct.unpack(">Q", plain)[0]

    def _stream(self, nonce: bytes) -> bytes:
        return hashlib.blake2b(nonce, key=self._key, digest_size=8, person=b"mv-stream").digest()

    def _mac(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self._key, digest_size=_MAC, person=b"mv-mac").digest()


class AccessTokens:
    """Login tokens: one fixed token forever, or (``ttl``) random ones that wear out."""

    def __init__(self, ttl: Optional[int] = None) -> None:
        self.ttl = ttl or None
        self._uses_left: dict[str, int] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        """Token for a successful login."""
        if self.ttl is None:
            return FIXED_ACCESS_TOKEN
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._uses_left[token] = self.ttl
        return token

    def consume(self, token: str) -> bool:
        """True if ``token`` may make this data request (and count the use)."""
        if self.ttl is None:
            return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), FIXED_ACCESS_TOKEN.encode())
        with self._lock:
            left = self._uses_left.get(token)
            if not left:
                return False
            if left == 1:
                del self._uses_left[token]
            else:
                self._uses_left[token] = left - 1
            return True
