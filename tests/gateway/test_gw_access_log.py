"""The access log line: sampled for successful requests, always written for failed ones."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from _gwhelpers import chat_body, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway import logs
from dexto.gateway.logs import JsonFormatter, configure_logging, get_logger, log_event


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[_Lines]:
    handler = _Lines()
    logger = get_logger()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    configure_logging("INFO")  # back to every line


@pytest.mark.parametrize(("sample", "ok_lines"), [(1.0, 3), (0.0, 0)])
def test_sampling_skips_successes_only(
    sample: float,
    ok_lines: int,
    lines: _Lines,
    sqlite_url: str,
    fake: tuple[FakeUpstream, str],
) -> None:
    with start_gateway(sqlite_url, fake[1], access_log_sample=sample) as gw:
        with httpx.Client(timeout=30) as c:
            url = gw.v1 + "/chat/completions"
            ok = [c.post(url, json=chat_body(), headers=gw.auth()).status_code for _ in range(3)]
            bad = c.post(url, json=chat_body(), headers=gw.auth("sk-dx-wrong")).status_code
    assert ok == [200] * 3 and bad == 401
    access = [x for x in lines.lines if x["msg"] == "chat.completions"]
    assert [x["status"] for x in access] == [200] * ok_lines + [401]
    assert any(x["msg"] == "gateway started" for x in lines.lines)  # other lines unaffected


def test_sampled_share_is_close_to_the_setting(lines: _Lines) -> None:
    configure_logging("INFO", access_sample=0.25)
    log = get_logger()
    for _ in range(2000):
        log_event(log, "chat.completions", status=200)
    log_event(log, "chat.completions", status=502)
    assert logs.ACCESS_EVENTS == {"chat.completions"}
    statuses = [x["status"] for x in lines.lines]
    assert statuses[-1] == 502
    assert 400 <= statuses.count(200) <= 600  # binomial(2000, 0.25): mean 500, sd 19.4


def test_line_keeps_its_fields_and_timestamp(lines: _Lines) -> None:
    configure_logging("INFO")
    log_event(get_logger(), "chat.completions", status=200, model="m", prompt="never logged")
    (line,) = lines.lines
    assert line["status"] == 200 and line["model"] == "m" and "prompt" not in line
    ts = str(line["ts"])
    assert len(ts) == 24 and ts.endswith("Z") and ts[10] == "T" and ts[19] == "."
