"""Structured logs: one JSON object per line on stderr, from a fixed set of fields.

Only the fields in :data:`ALLOWED_FIELDS` are ever written: no prompt, completion, header or key
can reach a log line even by mistake.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["ALLOWED_FIELDS", "JsonFormatter", "configure_logging", "get_logger", "log_event"]

LOGGER_NAME = "dexto.gateway"
ALLOWED_FIELDS = frozenset(
    {
        "event",
        "request_id",
        "account",
        "key_id",
        "model",
        "stream",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "cost_micros",
        "hold_micros",
        "written_off_micros",
        "estimated",
        "estimate_reason",
        "attempt",
        "latency_ms",
        "upstream_status",
        "error",
        "count",
        "path",
        "method",
        "workers",
        "db",
        "version",
    }
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage() if not record.args else record.msg,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for k, v in fields.items():
                if k in ALLOWED_FIELDS:
                    out[k] = v
        return json.dumps(out, default=str)


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def configure_logging(level: str = "INFO") -> None:
    logger = get_logger()
    logger.setLevel(level.upper())
    if not any(getattr(h, "_dexto_gateway", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._dexto_gateway = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def log_event(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})
