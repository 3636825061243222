"""Settings of one replica process; every field is one ``serve`` flag."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

MAX_SCALE = 10_000_000


@dataclass(frozen=True)
class ServerSettings:
    """What a replica serves and which faults it injects.

    Defaults give the faithful replica: no fault, no page-size cap, one fixed login token.
    A value of ``None`` or ``0`` switches a fault off.
    """

    scale: int = 1000
    seed: int = 42
    generation: int = 0
    fault_rate: float = 0.0
    rate_limit: Optional[float] = None
    latency_ms: float = 0.0
    token_ttl: Optional[int] = None
    drop_rate: float = 0.0
    max_page_size: Optional[int] = None
    corrupt_rate: float = 0.0
    fault_seed: int = 0
    # Schema drift: "entity.field" (e.g. "apprenticeships.cohort") served on every record of that entity.
    extra_fields: tuple[str, ...] = ()
    max_concurrency: Optional[int] = None
    rate_limit_shape: str = "bucket"  # bucket | fixed | sliding (see ratelimit.py)
    rate_limit_burst: Optional[int] = None  # the bucket's size (None: one second's worth)
    retry_after: str = "ceil"  # ceil | exact | 1 | 0 | none
    poison: bool = False  # hostile but valid JSON records among the normal ones (poison.py)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Reject values that would make the replica lie about what it does."""
        if not 0 <= self.scale <= MAX_SCALE:
            raise ValueError(f"scale must be in 0..{MAX_SCALE}, got {self.scale}")
        if self.generation < 0:
            raise ValueError("generation must be >= 0")
        for name in ("fault_rate", "drop_rate", "corrupt_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.fault_rate + self.drop_rate > 1.0:
            raise ValueError("fault_rate + drop_rate must not exceed 1")
        if self.rate_limit is not None and self.rate_limit < 0:
            raise ValueError("rate_limit must be > 0 (or None/0 for off)")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if self.token_ttl is not None and self.token_ttl < 0:
            raise ValueError("token_ttl must be >= 1 (or None/0 for off)")
        for spec in self.extra_fields:
            entity, _, name = spec.partition(".")
            if entity not in ("apprenticeships", "projects", "programmes") or not name.isidentifier():
                raise ValueError(f"extra field must be apprenticeships|projects|programmes.<name>, got {spec!r}")
        if self.max_concurrency is not None and self.max_concurrency < 0:
            raise ValueError("max_concurrency must be >= 1 (or None/0 for unlimited)")
        if self.rate_limit_shape not in ("bucket", "fixed", "sliding"):
            raise ValueError(f"rate_limit_shape must be bucket, fixed or sliding, got {self.rate_limit_shape!r}")
        if self.retry_after not in ("ceil", "exact", "1", "0", "none"):
            raise ValueError(f"retry_after must be ceil, exact, 1, 0 or none, got {self.retry_after!r}")
        if self.rate_limit_burst is not None and self.rate_limit_burst < 1:
            raise ValueError("rate_limit_burst must be >= 1 (or None for one second's worth)")
        if self.max_page_size is not None and self.max_page_size < 0:
            raise ValueError("max_page_size must be >= 1 (or None/0 for no cap)")

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of the flags (for logs and subprocess command lines)."""
        return asdict(self)
