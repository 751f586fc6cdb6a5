"""Log lines on stderr: readable by default (journald and cron mail take them as they are),
JSON with --log-format json. Lines about a probe or a transition carry site and endpoint.
Every line goes through `failover.scrub.scrub` on its way out: a URL's credentials or a
known secret never reach the log, whoever wrote the message."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from failover.humanize import iso_time
from failover.scrub import scrub

LOGGER_NAME = "failover"
_CONTEXT_KEYS = ("site", "endpoint", "check", "step", "run")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = iso_time(record.created)  # with its UTC offset: unambiguous in cron mail
        context = " ".join(
            f"{k}={getattr(record, k)}" for k in _CONTEXT_KEYS if getattr(record, k, None)
        )
        line = f"{stamp} {record.levelname:<7} {context + ': ' if context else ''}{record.getMessage()}"
        if record.exc_info and getattr(record, "show_traceback", False):
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "message": scrub(record.getMessage()),
        }
        for key in _CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value:
                out[key] = value
        if record.exc_info and getattr(record, "show_traceback", False):
            out["traceback"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out)


# Called before a log line is written (a progress line on a terminal clears itself, so
# that the log line does not land on it and is not erased with it).
before_log: list[Callable[[], None]] = []


class _Handler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    def emit(self, record: logging.LogRecord) -> None:
        for clear in list(before_log):
            clear()
        super().emit(record)


def setup_logging(fmt: str = "text", level: int = logging.INFO, debug: bool = False) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    handler = _Handler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else level)
    logger.propagate = False


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}")
