"""Every log record of a block of code, as text (secrets must never be in it)."""

from __future__ import annotations


class LogCapture:
    """Every log record (formatted, exceptions included) while installed on the root logger, DEBUG for our code."""

    def __init__(self) -> None:
        import logging

        self.lines: list[str] = []
        capture = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                capture.lines.append(self.format(record))

        self.handler = _Handler(logging.DEBUG)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def __enter__(self) -> LogCapture:
        import logging

        self._levels = {name: logging.getLogger(name).level for name in ("multiverse_etl", "sample_api")}
        for name in self._levels:
            logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger().addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        import logging

        logging.getLogger().removeHandler(self.handler)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)
