"""Typed failures of an extraction, so the job ends with one clear line instead of a stack trace."""

from __future__ import annotations

from typing import Optional

from ..errors import EtlError


class ExtractError(EtlError):
    """An extraction cannot go on; the message says why in plain words."""


class ApiError(ExtractError):
    """The API answered something the extractor cannot use (or gave up after retries)."""

    def __init__(self, message: str, *, status: Optional[int] = None, path: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.path = path


class ResponseTooLarge(ApiError):
    """An answer body bigger than api.max_response_bytes (after decompression): refused while it was read."""


class AuthError(ApiError):
    """The credentials were refused: retrying would only lock the account or flood the API."""


class RetryBudgetExhausted(ApiError):
    """A request used all its attempts, or the run used its whole retry budget."""


class DeadPaginationToken(ApiError):
    """A pagination token the server no longer accepts (it restarted): restart that list."""


class PaginationLoop(ApiError):
    """The API keeps handing out pages without progress (same token twice, more pages than rows)."""


class CredentialsError(ExtractError):
    """No usable credentials were configured (names the places looked at, never a value)."""


class ResumeError(ExtractError):
    """A --resume asks for a run that cannot be resumed (unknown, or already committed)."""
