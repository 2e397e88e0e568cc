"""Structured logs: one JSON object per line on stderr, from a fixed set of fields.

Only the fields in :data:`ALLOWED_FIELDS` are ever written: no prompt, completion, header or key
can reach a log line even by mistake.

The access log line (event ``chat.completions``) of a successful request is written for a share
``access_sample`` of requests (``configure_logging``; 1.0 = every one, 0 = none); failed requests
are always logged. :func:`log_event` builds the record directly (no caller lookup) and the
formatter reuses the timestamp text within a second, so a line costs little.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from typing import Any

__all__ = [
    "ACCESS_EVENTS",
    "ALLOWED_FIELDS",
    "JsonFormatter",
    "configure_logging",
    "get_logger",
    "log_event",
]

LOGGER_NAME = "dexto.gateway"
ACCESS_EVENTS = frozenset({"chat.completions"})
_access = {"sample": 1.0}
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
        "spool_dir",
        "fix",
    }
)


# json.dumps(..., default=str) would build this encoder on every call.
_ENCODE = json.JSONEncoder(default=str).encode


class JsonFormatter(logging.Formatter):
    _second = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        out: dict[str, Any] = {
            "ts": f"{self._second_text}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage() if not record.args else record.msg,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            allowed = ALLOWED_FIELDS
            out.update({k: v for k, v in fields.items() if k in allowed})
        return _ENCODE(out)


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def configure_logging(level: str = "INFO", *, access_sample: float = 1.0) -> None:
    _access["sample"] = min(1.0, max(0.0, access_sample))
    logger = get_logger()
    logger.setLevel(level.upper())
    if not any(getattr(h, "_dexto_gateway", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._dexto_gateway = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def log_event(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields: Any) -> None:
    if not logger.isEnabledFor(level):
        return
    sample = _access["sample"]
    if sample < 1.0 and msg in ACCESS_EVENTS and fields.get("status") == 200:
        if sample <= 0.0 or random.random() >= sample:
            return
    logger.handle(
        logger.makeRecord(logger.name, level, "", 0, msg, (), None, extra={"fields": fields})
    )
