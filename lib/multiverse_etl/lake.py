"""The lake as the jobs reach it: its root, the scheme Spark uses for it, and the storage over its files.

Spark reads and writes the Delta tables at `path`; the Delta logs, manifests and locks are read through
`storage`. One object for both, so that no job can pair a lake with another lake's storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .config import Config
from .storage import Storage, open_storage, spark_path


@dataclass(frozen=True)
class Lake:
    """Where the tables are: the lake root, the storage over it, and the scheme Spark uses for s3:// roots."""

    root: str
    storage: Storage = field(compare=False, repr=False)  # not compared: two storage objects over one root, one lake
    scheme: str = "s3a"  # s3a locally; s3 on EMR (EMRFS) and Glue

    def path(self, table: str) -> str:
        """The path Spark reads and writes a table (or any key) at."""
        return spark_path(self.root, table, self.scheme)

    @classmethod
    def of(cls, config: Config, storage: Optional[Storage] = None) -> Lake:
        """The configured lake; `storage` when the caller has opened (and checked) it already."""
        return cls(config.lake.root, storage or open_storage(config.lake.root, config.s3), config.s3.spark_scheme)

    @classmethod
    def at(cls, root: str, scheme: str = "s3a") -> Lake:
        """The lake at a root with the default S3 settings (tests and tools; jobs use `of`)."""
        return cls(root, open_storage(root), scheme)
