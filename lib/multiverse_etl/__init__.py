"""multiverse-etl: the Multiverse sample API exported to a Delta lake on S3."""

__version__ = "0.1.0"
