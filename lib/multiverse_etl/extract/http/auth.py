"""The shared bearer token: single-flight login, its generation, what it earned, and how long tokens live.

One token serves every task. On a 401 exactly one task logs in again (single flight); the others wait and
reuse its token. When a token dies (its first 401), the number of 2xx answers it earned is its life: the
limiter keeps fewer requests than that in flight, so a short-lived token is not used up by the pool before
most requests get a turn. Tokens that earn nothing at all, several in a row, mean the API refuses us.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Optional

from ... import jsonsafe
from ..errors import AuthError
from ..redaction import Secret

log = logging.getLogger(__name__)

# A run ends on 401s only when this many fresh tokens in a row earned no 2xx at all (the API refuses us);
# one request may be unlucky many times while tokens die faster than the pool uses them.
MAX_BARREN_TOKENS = 3
TOKEN_LIVES_KEPT = 4  # the cap follows the shortest of the last few token lives
MAX_LIVES_RECORDED = 10_000  # bounded memory on a very long run with churning tokens


class Auth:
    """The current access token and its generation (`version`: 0 before the first login)."""

    def __init__(self, display_url: str, on_token: Optional[Callable[[str], None]] = None) -> None:
        self.display_url = display_url
        self.secret: Optional[Secret] = None
        self.headers: dict[str, str] = {}
        self.version = 0
        self.logins = 0
        self.relogins = 0
        self.lives: list[int] = []  # 2xx answers each expired token earned
        self.barren = 0  # fresh tokens in a row that earned no 2xx
        self._good_version = 0  # the latest token that earned a 2xx (answers may come back after a 401)
        self._on_token = on_token  # told every new token (the run registers it for log redaction)
        self._earned = 0  # 2xx answers the current token earned
        self._died = False  # the current token got its first 401
        self._refused: Optional[AuthError] = None  # once refused, never ask again (no lock-out storm)
        self._lock: Optional[asyncio.Lock] = None

    def accept(self, body: bytes) -> None:
        """A login's 200 body: its access_token becomes the current token."""
        try:
            token = jsonsafe.loads(body)["access_token"]  # whatever else the body holds (huge numbers, nesting)
        except (ValueError, KeyError, TypeError):
            raise AuthError(
                f"login to {self.display_url} answered 200 without an access_token", path="/login"
            ) from None
        if not isinstance(token, str) or not token:
            raise AuthError(f"login to {self.display_url} answered an empty access_token", path="/login")
        if self._on_token is not None:
            self._on_token(token)
        self.secret = Secret(token)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.version += 1
        self._earned = 0
        self._died = False
        self.logins += 1

    @property
    def dead(self) -> bool:
        """The current token has been refused once (a new one is on its way or due)."""
        return self._died

    def refused(self, error: AuthError) -> AuthError:
        """The API refused the credentials: remember it, so no task asks again."""
        self._refused = error
        return error

    def served(self, version: int) -> None:
        """A 2xx answer to a request sent with token `version`."""
        if version == self.version:
            self._earned += 1
        self._good_version = max(self._good_version, version)

    def expired(self, version: int) -> Optional[int]:
        """A 401 to token `version`. On the current token's first: the in-flight cap its life suggests
        (half the shortest recent life), or None when it says nothing new."""
        if version != self.version or self._died:
            return None
        self._died = True
        if self._earned == 0:
            return None
        if len(self.lives) < MAX_LIVES_RECORDED:
            self.lives.append(self._earned)
        return max(1, min(self.lives[-TOKEN_LIVES_KEPT:]) // 2)

    async def renew(
        self,
        seen_version: int,
        login: Callable[[], Awaitable[None]],
        backoff: Callable[[int], Awaitable[None]],
    ) -> None:
        """Single flight: the first task to need a new token logs in; the others wait and reuse its token.
        `backoff(barren)` waits before a login while tokens earn nothing."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._refused is not None:
                raise self._refused
            if self.version != seen_version:
                return  # another task already logged in
            if seen_version:
                barren = self._count_barren()
                if barren:
                    await backoff(barren)
                self.relogins += 1
                log.debug("token rejected: logging in again (relogin %d)", self.relogins)
            await login()

    def to_manifest(self) -> dict[str, Any]:
        lives = self.lives
        return {
            "logins": self.logins,
            "relogins": self.relogins,
            "token_life_min": min(lives) if lives else None,
            "token_life_median": sorted(lives)[len(lives) // 2] if lives else None,
            "tokens_expired": len(lives),
        }

    def _count_barren(self) -> int:
        """How many tokens in a row have now earned nothing (AuthError when so many that the API refuses us).
        Counted from the latest token that earned a 2xx, not from what the dying token earned so far: with
        more requests in flight than a token lives, its 401s come back before its slower 2xx answers."""
        self.barren = self.version - self._good_version
        if self.barren >= MAX_BARREN_TOKENS:
            raise self.refused(
                AuthError(
                    f"the API rejects fresh tokens: {self.barren} logins in a row gave tokens that earned no 2xx "
                    f"answer at all (401 at once); check the account's permissions at {self.display_url}",
                    status=401,
                    path="/login",
                )
            )
        return self.barren
