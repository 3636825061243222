"""Where config values come from besides the YAML file: environment variables and dotted `section.key` overrides.

Raises `ConfigError` naming the variable or flag at fault; imported by config.py only.
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import ConfigError

ENV_PREFIX = "MV__"  # MV__API__PAGE_SIZE=500 sets api.page_size
# Short aliases people expect to find (credentials must never sit in a YAML file in git).
ENV_ALIASES = {
    "MV_API_USERNAME": "api.username",
    "MV_API_PASSWORD": "api.password",
    "MV_API_URL": "api.url",
    "MV_LAKE_ROOT": "lake.root",
}


def env_overrides(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """dotted key -> (variable name, value) for the aliases and MV__SECTION__KEY variables."""
    found = {dotted: (name, environ[name]) for name, dotted in ENV_ALIASES.items() if environ.get(name)}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and value != "":
            parts = name[len(ENV_PREFIX) :].lower().split("__")
            if len(parts) != 2:
                raise ConfigError(f"environment variable {name}: expected {ENV_PREFIX}SECTION__KEY")
            found[".".join(parts)] = (name, value)
    return found


def set_dotted(raw: dict, dotted: str, value: Any, origin: str) -> None:
    parts = dotted.split(".")
    if len(parts) == 1 and parts[0] == "env":
        raw["env"] = value
        return
    if len(parts) < 2:
        raise ConfigError(f"{origin}: expected section.key, got '{dotted}'")
    section = raw.setdefault(parts[0], {})
    if not isinstance(section, dict):
        raise ConfigError(f"{origin}: section '{parts[0]}' is not a mapping")
    if parts[0] == "spark" and parts[1] == "conf" and len(parts) > 2:
        section.setdefault("conf", {})[".".join(parts[2:])] = value
        return
    if len(parts) != 2:
        raise ConfigError(f"{origin}: expected section.key, got '{dotted}'")
    section[parts[1]] = value
