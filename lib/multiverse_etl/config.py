"""The one config loader: YAML per environment, then environment variables, then CLI flags.

Config is data. Every key is declared below with its type, so a typo or a wrong value fails
at start with a message that names the key, instead of deep inside a Spark job.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

import yaml

from .config_overrides import env_overrides, set_dotted
from .errors import ConfigError

# spark-submit.sh exports MV_PROJECT_ROOT: under spark-submit this module is imported from the
# --py-files zip in dist/, so its own location no longer says where conf/ and the project are.
PROJECT_ROOT = Path(os.environ.get("MV_PROJECT_ROOT") or Path(__file__).resolve().parents[2])


@dataclasses.dataclass(frozen=True)
class LakeConfig:
    root: str  # s3://bucket/prefix or a local folder (made absolute at load)
    lock_lease_s: int = 600  # the writer lock's lease (renewed every third of it); see lock.py


@dataclasses.dataclass(frozen=True)
class ApiConfig:
    url: str = "http://127.0.0.1:8000"
    username: Optional[str] = None
    password: Optional[str] = dataclasses.field(default=None, repr=False)
    # AWS Secrets Manager secret holding {"username": ..., "password": ...} (EMR/Glue).
    secret_id: Optional[str] = None
    page_size: int = 1000
    concurrency: int = 64  # the ceiling of the adaptive limiter (fixed mode: always this many in flight)
    concurrency_mode: Literal["adaptive", "fixed"] = "adaptive"
    max_requests_per_second: Optional[float] = None
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_attempts: int = 8
    backoff_base_s: float = 0.2
    backoff_max_s: float = 30.0
    retry_budget: int = 100_000
    max_list_restarts: int = 5
    verify_tls: bool = True
    # The largest answer body taken, counted after decompression while it is read: a bigger (or gzip-bombed)
    # page ends the run with ResponseTooLarge. The extractor holds at most concurrency x this in bodies.
    max_response_bytes: int = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class S3Config:
    endpoint_url: Optional[str] = None  # None = AWS itself
    region: str = "eu-west-2"
    path_style_access: bool = False
    ssl_enabled: bool = True
    # Hadoop credentials provider class for s3a; None = the default chain (instance role).
    credentials_provider: Optional[str] = None
    access_key_id: Optional[str] = None
    secret_access_key: Optional[str] = dataclasses.field(default=None, repr=False)
    # Scheme Spark uses for s3:// lake roots: s3a locally, s3 (EMRFS / Glue) on AWS.
    spark_scheme: Literal["s3a", "s3"] = "s3a"
    sse: Optional[Literal["AES256", "aws:kms"]] = "AES256"
    sse_kms_key_id: Optional[str] = None
    max_attempts: int = 10  # boto3's (landing, lock, manifests), adaptive mode: SlowDown, 5xx, resets, timeouts
    # S3A (Delta), explicit (hadoop-aws 3.3.4's defaults: SDK attempts 20; retries 7 from 500ms, throttled 20 from
    # 100ms): the SDK's attempts at each request, then S3A's retries of a failed or throttled (SlowDown) operation.
    s3a_attempts_maximum: int = 5
    s3a_retry_limit: int = 7
    s3a_retry_interval_ms: int = 500
    s3a_throttle_limit: int = 20
    s3a_throttle_interval_ms: int = 500


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    mode: Literal["full", "incremental"] = "full"
    projects_scope: Literal["all", "changed"] = "all"
    lookback_seconds: int = 3600
    part_max_bytes: int = 64 * 1024 * 1024
    progress_interval_s: float = 5.0


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    shuffle_partitions: int = 8
    # Gold's personal columns (names, e-mail) as keyed pseudonyms; the key is read from this variable.
    pseudonymise_gold: bool = False
    pseudonymise_key_env: str = "MV_PSEUDONYMISE_KEY"
    # Fields the API serves that the contract does not know: warn (log + audit), fail the run, or ignore (no scan).
    on_unknown_fields: Literal["warn", "fail", "ignore"] = "warn"
    # Gold is MERGEd only while at most this share of its apprenticeships is touched; above, rebuilt (cheaper).
    gold_merge_max_share: float = 0.01


@dataclasses.dataclass(frozen=True)
class MaintainConfig:
    optimize_days: int = 7
    vacuum_retention_hours: int = 168


@dataclasses.dataclass(frozen=True)
class SparkConfig:
    master: Optional[str] = None  # None = whatever spark-submit / the platform says
    app_name: str = "multiverse-etl"
    # "auto" = the Delta + hadoop-aws Maven packages matching the installed pyspark;
    # an empty list = the platform provides them (EMR, Glue).
    packages: Any = "auto"
    ivy_dir: Optional[str] = None
    conf: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    format: Literal["text", "json"] = "text"  # json: one object per event (CloudWatch Logs Insights)
    # Spark's and Ivy's own output under spark-submit.sh: "file" (in `dir`, the console keeps the project's
    # lines and Spark's WARN/ERROR) or "console" (all of it, where EMR and Glue collect it).
    spark_output: Literal["file", "console"] = "console"
    dir: str = "logs"  # relative to the project root


@dataclasses.dataclass(frozen=True)
class Config:
    env: str
    lake: LakeConfig
    api: ApiConfig = ApiConfig()
    s3: S3Config = S3Config()
    extract: ExtractConfig = ExtractConfig()
    transform: TransformConfig = TransformConfig()
    maintain: MaintainConfig = MaintainConfig()
    spark: SparkConfig = SparkConfig()
    logging: LoggingConfig = LoggingConfig()
    source: str = "<defaults>"  # where the YAML came from, for messages

    def redacted(self) -> dict[str, Any]:
        """The config as a dict safe to log: secrets replaced."""
        data = dataclasses.asdict(self)
        for section, key in SECRET_KEYS:
            if data[section].get(key) is not None:
                data[section][key] = "***"
        return data


S3_COUNTS = ("max_attempts", "s3a_retry_limit", "s3a_throttle_limit")  # retries: 0 is none
S3_POSITIVE = ("s3a_attempts_maximum", "s3a_retry_interval_ms", "s3a_throttle_interval_ms")
SECRET_KEYS = (("api", "password"), ("s3", "secret_access_key"))
SECTIONS: dict[str, type] = {n: h for n, h in typing.get_type_hints(Config).items() if n not in ("env", "source")}


def find_config_file(env: str, conf_dir: Optional[str] = None) -> Path:
    """Where conf/<env>.yaml is: an explicit path, $MV_CONF_DIR, ./conf, the cwd (spark --files)."""
    if env.endswith((".yaml", ".yml")):
        path = Path(env)
        if path.is_file():
            return path.resolve()
        raise ConfigError(f"config file {env} does not exist")
    candidates = [Path(d) / f"{env}.yaml" for d in (conf_dir, os.environ.get("MV_CONF_DIR")) if d]
    candidates += [Path("conf") / f"{env}.yaml", Path(f"{env}.yaml"), PROJECT_ROOT / "conf" / f"{env}.yaml"]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    known = sorted(p.stem for p in (PROJECT_ROOT / "conf").glob("*.yaml"))
    raise ConfigError(f"no config for env '{env}' (looked in {', '.join(map(str, candidates))}); known envs: {known}")


def load_config(
    env: str,
    overrides: Optional[Mapping[str, Any]] = None,
    environ: Optional[Mapping[str, str]] = None,
    conf_dir: Optional[str] = None,
) -> Config:
    """Load conf/<env>.yaml, apply MV__SECTION__KEY / alias variables, then `overrides` (dotted keys)."""
    environ = os.environ if environ is None else environ
    path = find_config_file(env, conf_dir)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    raw.setdefault("env", path.stem)
    origins: dict[str, str] = {}  # dotted key -> where its value came from, when not the YAML file
    for name, (variable, value) in env_overrides(environ).items():
        origins[name] = f"environment variable {variable}"
        set_dotted(raw, name, value, origin=origins[name])
    for name, value in (overrides or {}).items():
        if value is not None:
            origins[name] = "command line (--set or a flag)"
            set_dotted(raw, name, value, origin=origins[name])
    return build_config(raw, source=str(path), base_dir=path.parent.parent, origins=origins)


def build_config(
    raw: Mapping[str, Any],
    source: str = "<dict>",
    base_dir: Optional[Path] = None,
    origins: Optional[Mapping[str, str]] = None,
) -> Config:
    """Validate a plain dict into a Config; relative local paths are resolved against base_dir.

    `origins` names where an overridden key came from (a variable, a flag), so its error blames that, not the file."""
    origins = origins or {}
    unknown = set(raw) - set(SECTIONS) - {"env"}
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {sorted(unknown)}; expected {sorted(SECTIONS)}")
    if "lake" not in raw or not isinstance(raw["lake"], dict) or not raw["lake"].get("root"):
        raise ConfigError(f"{source}: 'lake.root' is required (a folder or s3://bucket/prefix)")
    sections = {name: _build_section(name, cls, raw.get(name) or {}, source, origins) for name, cls in SECTIONS.items()}
    base_dir = base_dir or Path.cwd()
    sections["lake"] = dataclasses.replace(sections["lake"], root=_resolve_root(sections["lake"].root, base_dir))
    if sections["spark"].ivy_dir:
        ivy = Path(sections["spark"].ivy_dir)
        ivy = ivy if ivy.is_absolute() else base_dir / ivy
        sections["spark"] = dataclasses.replace(sections["spark"], ivy_dir=str(ivy))
    config = Config(env=str(raw.get("env", "custom")), source=source, **sections)
    _check_semantics(config, source, origins)
    return config


def _resolve_root(root: str, base_dir: Path) -> str:
    if "://" in root:
        if not root.startswith(("s3://", "s3a://", "file://")):
            raise ConfigError(f"'lake.root' must be a folder or s3://bucket/prefix, got {root!r}")
        return root.replace("s3a://", "s3://", 1).rstrip("/")
    path = Path(root).expanduser()
    return str((path if path.is_absolute() else base_dir / path).resolve())


def _check_semantics(config: Config, source: str, origins: Mapping[str, str]) -> None:
    checks = [
        ("lake.lock_lease_s", config.lake.lock_lease_s >= 30, "must be at least 30 (seconds)"),
        ("api.page_size", config.api.page_size >= 1, "must be at least 1"),
        ("api.concurrency", 1 <= config.api.concurrency <= 1024, "must be between 1 and 1024"),
        ("api.max_attempts", config.api.max_attempts >= 1, "must be at least 1"),
        *((f"s3.{key}", getattr(config.s3, key) >= 0, "must not be negative") for key in S3_COUNTS),
        *((f"s3.{key}", getattr(config.s3, key) >= 1, "must be at least 1") for key in S3_POSITIVE),
        ("api.max_response_bytes", config.api.max_response_bytes >= 1, "must be a positive integer (bytes)"),
        ("api.max_requests_per_second", (config.api.max_requests_per_second or 1) > 0, "must be positive"),
        ("api.url", config.api.url.startswith(("http://", "https://")), "must start with http:// or https://"),
        ("extract.part_max_bytes", config.extract.part_max_bytes >= 1024, "must be at least 1024"),
        ("extract.lookback_seconds", config.extract.lookback_seconds >= 0, "must not be negative"),
        ("maintain.vacuum_retention_hours", config.maintain.vacuum_retention_hours >= 0, "must not be negative"),
        ("transform.shuffle_partitions", config.transform.shuffle_partitions >= 1, "must be at least 1"),
        ("transform.gold_merge_max_share", 0 <= config.transform.gold_merge_max_share <= 1, "must be within 0..1"),
    ]
    for key, ok, why in checks:
        if not ok:
            raise ConfigError(f"{origins.get(key, source)}: '{key}' {why}")
    packages = config.spark.packages
    if packages != "auto" and not (isinstance(packages, list) and all(isinstance(p, str) for p in packages)):
        raise ConfigError(f"{source}: 'spark.packages' must be \"auto\" or a list of Maven coordinates")


def _build_section(name: str, cls: type, values: Any, source: str, origins: Mapping[str, str]) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section '{name}' must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        where = origins.get(f"{name}.{unknown[0]}", source)
        raise ConfigError(f"{where}: unknown key '{name}.{unknown[0]}'; '{name}' takes {sorted(fields)}")
    kwargs = {
        key: _coerce(f"{name}.{key}", value, hints[key], origins.get(f"{name}.{key}", source))
        for key, value in values.items()
    }
    return cls(**kwargs)


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """Check a value against its declared type; strings from env/CLI are parsed."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, getattr(types, "UnionType", ())) and type(None) in args:
        if value is None or (isinstance(value, str) and value.lower() in ("", "null", "none")):
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _coerce(key, value, inner, source)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: '{key}' must be one of {list(args)}, got {value!r}")
        return value
    if origin in (Mapping, dict) or hint is Mapping:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
        what = "an integer" if hint is int else "a number"
        try:
            number = hint(value) if isinstance(value, str) else value
        except ValueError:
            raise ConfigError(f"{source}: '{key}' must be {what}, got {value!r}") from None
        if not isinstance(number, int if hint is int else (int, float)) or isinstance(number, bool):
            raise ConfigError(f"{source}: '{key}' must be {what}, got {value!r}")
        return hint(number)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
        return str(value)
    return value
