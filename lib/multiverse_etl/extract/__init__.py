"""Extraction: the Multiverse API exported into raw JSON landing files (the first half of the pipeline)."""

from .args import add_extract_arguments, extract_overrides
from .driver import ExtractResult, run_extract
from .errors import (
    ApiError,
    AuthError,
    CredentialsError,
    DeadPaginationToken,
    ExtractError,
    PaginationLoop,
    ResponseTooLarge,
    ResumeError,
    RetryBudgetExhausted,
)

__all__ = [
    "run_extract",
    "ExtractResult",
    "add_extract_arguments",
    "extract_overrides",
    "ExtractError",
    "ApiError",
    "AuthError",
    "CredentialsError",
    "DeadPaginationToken",
    "PaginationLoop",
    "ResponseTooLarge",
    "ResumeError",
    "RetryBudgetExhausted",
]
