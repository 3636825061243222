"""CLI: ``python -m sample_api serve|dump ...`` (see sample_api/README.md)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from .server import DEFAULT_HOST, serve_forever
from .settings import ServerSettings


def _data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=int, default=1000, help="apprenticeships at generation 0 (10 to 1,000,000)")
    parser.add_argument("--seed", type=int, default=42, help="data seed")
    parser.add_argument("--generation", type=int, default=0, help="simulated days of changes after generation 0")
    parser.add_argument(
        "--corrupt-rate", type=float, default=0.0, help="share of records served broken (deterministic per record)"
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sample_api", description="Replica of the Multiverse sample API.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API with uvicorn (one worker)")
    _data_flags(serve)
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    serve.add_argument("--fault-rate", type=float, default=0.0, help="share of data requests answering 500")
    serve.add_argument(
        "--rate-limit", type=float, default=0.0, help="data requests/s before 429 + Retry-After (0 = off)"
    )
    serve.add_argument(
        "--rate-limit-shape",
        choices=("bucket", "fixed", "sliding"),
        default="bucket",
        help="token bucket, fixed one-second window, or sliding one-second window",
    )
    serve.add_argument(
        "--rate-limit-burst", type=int, default=0, help="the token bucket's size (0 = one second's worth)"
    )
    serve.add_argument(
        "--retry-after",
        choices=("ceil", "exact", "1", "0", "none"),
        default="ceil",
        help="Retry-After on a 429: whole seconds rounded up, exact seconds, 1, 0, or no header",
    )
    serve.add_argument(
        "--latency-ms", type=float, default=0.0, help="added latency per data request, jitter x0.5..x1.5"
    )
    serve.add_argument(
        "--token-ttl", type=int, default=0, help="data requests per login token before 401 (0 = fixed token)"
    )
    serve.add_argument(
        "--drop-rate", type=float, default=0.0, help="share of data requests whose connection closes unanswered"
    )
    serve.add_argument("--max-page-size", type=int, default=0, help="cap on page_size (0 = no cap, like the original)")
    serve.add_argument(
        "--max-concurrency",
        type=int,
        default=0,
        help="data requests served at once; more wait in a queue (0 = unlimited)",
    )
    serve.add_argument("--fault-seed", type=int, default=0, help="seed of the fault RNG")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument(
        "--extra-field",
        action="append",
        default=[],
        metavar="ENTITY.FIELD",
        help="serve a field the contract does not know on every record (schema drift); repeatable",
    )
    serve.add_argument(
        "--poison",
        action="store_true",
        help="serve hostile but valid JSON records (huge numbers, deep nesting, a 1 MB string, "
        "lone surrogates) on each list's first page",
    )

    dump = sub.add_parser("dump", help="write the ground truth a server would serve")
    _data_flags(dump)
    dump.add_argument("--out", required=True, help="output directory")
    return parser


def _settings(args: argparse.Namespace) -> ServerSettings:
    return ServerSettings(
        scale=args.scale,
        seed=args.seed,
        generation=args.generation,
        fault_rate=args.fault_rate,
        rate_limit=args.rate_limit or None,
        latency_ms=args.latency_ms,
        token_ttl=args.token_ttl or None,
        drop_rate=args.drop_rate,
        max_page_size=args.max_page_size or None,
        corrupt_rate=args.corrupt_rate,
        fault_seed=args.fault_seed,
        extra_fields=tuple(getattr(args, "extra_field", ())),
        max_concurrency=args.max_concurrency or None,
        rate_limit_shape=getattr(args, "rate_limit_shape", "bucket"),
        rate_limit_burst=getattr(args, "rate_limit_burst", 0) or None,
        retry_after=getattr(args, "retry_after", "ceil"),
        poison=getattr(args, "poison", False),
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "dump":
        from .dump import write_dump

        counts = write_dump(args.out, args.scale, args.seed, args.generation, args.corrupt_rate)
        print(" ".join(f"{name}={count}" for name, count in counts.items()), flush=True)
        return 0
    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    serve_forever(
        settings,
        host=args.host,
        port=args.port,
        log_level="warning" if args.log_level == "info" else args.log_level,
        access_log=args.access_log,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
