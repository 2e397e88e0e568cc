"""``dexto._url``: which URLs name a usable host and port, and how URLs are shown."""

from __future__ import annotations

import pytest

from dexto._url import host_and_port_ok, redact_url, redact_urls_in


@pytest.mark.parametrize(
    ("url", "host_required", "ok"),
    [
        ("http://localhost:4000/v1", True, True),
        ("https://api.example.com", True, True),
        ("http://[::1]:8080/v1", True, True),
        ("redis://:pw@cache:65535/0", True, True),
        ("http://localhost:0/v1", True, False),
        ("http://localhost:65536/v1", True, False),
        ("http://localhost:notaport/v1", True, False),
        ("http://[::1/v1", True, False),
        ("http:///v1", True, False),
        ("unix:///run/redis.sock", True, False),
        ("unix:///run/redis.sock", False, True),
    ],
)
def test_host_and_port_ok(url: str, host_required: bool, ok: bool) -> None:
    assert host_and_port_ok(url, host_required=host_required) is ok


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://bob:s3cret@h:9/v1", "http://bob:***@h:9/v1"),
        ("http://h/v1?api_key=s3cret&x=1", "http://h/v1?api_key=***&x=1"),
        ("http://bob:s3cret@[::1/v1", "http://bob:***@[::1/v1"),
        ("http://h/v1?model=a", "http://h/v1?model=a"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            'Could not connect to the endpoint URL: "http://u:s3cret@h:9/m/converse?X-Amz-Security-Token=s3cret"',
            'Could not connect to the endpoint URL: "http://u:***@h:9/m/converse?X-Amz-Security-Token=***"',
        ),
        (
            "for url 'https://h/v1?key=s3cret' and http://a:s3cret@b",
            "for url 'https://h/v1?key=***' and http://a:***@b",
        ),
        ("no URL here: s3cret", "no URL here: s3cret"),
    ],
)
def test_redact_urls_in(text: str, shown: str) -> None:
    assert redact_urls_in(text) == shown
