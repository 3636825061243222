"""The shared bearer token: its generation, what it earned, and how long tokens live.

One token serves every task. When it dies (its first 401), the number of 2xx answers it earned is its
life; the limiter keeps fewer requests than that in flight, so a short-lived token is not used up by the
pool before most requests get a turn. Tokens that earn nothing at all, several in a row, mean the API
refuses us (the client then ends the run).
"""

from __future__ import annotations

from typing import Callable, Optional

import orjson

from .errors import AuthError
from .redaction import Secret
from .stats import RequestStats

# A run ends on 401s only when this many fresh tokens in a row earned no 2xx at all (the API refuses us);
# one request may be unlucky many times while tokens die faster than the pool uses them.
MAX_BARREN_TOKENS = 3
TOKEN_LIVES_KEPT = 4  # the cap follows the shortest of the last few token lives


class BearerToken:
    """The current access token and its generation (`version`: 0 before the first login)."""

    def __init__(self, stats: RequestStats, on_token: Optional[Callable[[str], None]] = None) -> None:
        self.stats = stats
        self.secret: Optional[Secret] = None
        self.headers: dict[str, str] = {}
        self.version = 0
        self.barren = 0  # fresh tokens in a row that earned no 2xx
        self._on_token = on_token  # told every new token (the run registers it for log redaction)
        self._earned = 0  # 2xx answers the current token earned
        self._died = False  # the current token got its first 401

    def accept(self, body: bytes, display_url: str) -> None:
        """A login's 200 body: its access_token becomes the current token."""
        try:
            token = orjson.loads(body)["access_token"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise AuthError(f"login to {display_url} answered 200 without an access_token", path="/login") from None
        if not isinstance(token, str) or not token:
            raise AuthError(f"login to {display_url} answered an empty access_token", path="/login")
        if self._on_token is not None:
            self._on_token(token)
        self.secret = Secret(token)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.version += 1
        self._earned = 0
        self._died = False
        self.stats.logins += 1

    def served(self, version: int) -> None:
        """A 2xx answer to a request sent with token `version`."""
        if version == self.version:
            self._earned += 1

    def expired(self, version: int) -> Optional[int]:
        """A 401 to token `version`. On the current token's first: the in-flight cap its life suggests
        (half the shortest recent life), or None when it says nothing new."""
        if version != self.version or self._died:
            return None
        self._died = True
        if self._earned == 0:
            return None
        lives = self.stats.token_lives
        lives.append(self._earned)
        return max(1, min(lives[-TOKEN_LIVES_KEPT:]) // 2)

    def count_barren(self, display_url: str) -> int:
        """Before logging in again: how many tokens in a row have now earned nothing (AuthError when so
        many that the API must be refusing us)."""
        self.barren = self.barren + 1 if self._earned == 0 else 0
        if self.barren >= MAX_BARREN_TOKENS:
            raise AuthError(
                f"the API rejects fresh tokens: {self.barren} logins in a row gave tokens that earned no 2xx "
                f"answer at all (401 at once); check the account's permissions at {display_url}",
                status=401,
                path="/login",
            )
        return self.barren
