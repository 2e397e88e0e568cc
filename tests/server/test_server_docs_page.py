"""``/docs`` in Chromium: Swagger UI renders every operation from this server alone (no
request leaves the loopback origin, no CSP violation, no page error)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import StartServer, shot

pytestmark = pytest.mark.browser


def test_swagger_ui_renders_offline(serve: StartServer, open_page: Any) -> None:
    s = serve()
    page = open_page(s, "docs", ready=False)
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() == len(
        [op for ops in s.get("/openapi.json").json()["paths"].values() for op in ops]
    )
    shot(page, "20-docs")
    # the open_page fixture fails the test on any page error; here, also requests and CSP
    assert page.requests_elsewhere == [] and page.console_errors == []
