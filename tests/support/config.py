"""Configs for tests and benches: a named env's config with the lake moved and sections patched."""

from __future__ import annotations

import dataclasses

from multiverse_etl.config import Config, load_config


def make_config(lake_root: str, env: str = "local", **sections) -> Config:
    """The named env's config with the lake moved to `lake_root` and sections patched (dotted-free)."""
    base = load_config(env, environ={})
    config = dataclasses.replace(base, lake=dataclasses.replace(base.lake, root=lake_root))
    for name, values in sections.items():
        config = dataclasses.replace(config, **{name: dataclasses.replace(getattr(config, name), **values)})
    return config
