"""The second half of the pipeline: committed landing runs → bronze, silver, gold Delta tables, audited.

`run_transform(spark, config)` is the entry point; every step it chains is a pure
DataFrame → DataFrame function of this package (`read`, `clean`, `quarantine`, `dedupe`,
`changes`, `gold`), and only `tables` touches Delta. See docs/transform.md.
"""

from .read import LandingReadError
from .reconcile import ReconciliationError
from .results import TransformResult
from .run import run_transform

__all__ = ["run_transform", "TransformResult", "ReconciliationError", "LandingReadError"]
