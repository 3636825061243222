"""multiverse-etl: the Multiverse sample API exported to a Delta lake on S3."""

from . import s3_storage as _s3_storage  # noqa: F401  registers s3:// lake roots with storage.open_storage

__version__ = "0.1.0"
