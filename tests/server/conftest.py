"""Fixtures: an agent file with comments, a factory for running servers (stopped after), and
Debian's Chromium driven by Playwright for the page tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server._serve import AGENT_YAML, Served, start

StartServer = Callable[..., Served]


@pytest.fixture
def agent_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent" / "demo-agent.yml"
    path.parent.mkdir()
    path.write_text(AGENT_YAML, "utf-8")
    return path


@pytest.fixture
def serve(isolated_env: Path, agent_file: Path) -> Iterator[StartServer]:
    started: list[Served] = []

    def factory(env: dict[str, str] | None = None, **kw: Any) -> Served:
        s = start(isolated_env, kw.pop("agent", agent_file), env, **kw)
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()


CHROMIUM = "/usr/bin/chromium"
# Read at import: the autouse isolated_env fixture removes DEXTO_* variables per test.
REQUIRE = os.environ.get("DEXTO_REQUIRE_SERVICES") == "1"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if REQUIRE:
            pytest.fail(reason + " and DEXTO_REQUIRE_SERVICES=1")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open the served page in a fresh context; page errors fail the test at teardown."""
    pages: list[Any] = []

    def go(
        served: Served,
        fragment: str = "",
        *,
        width: int = 1360,
        height: int = 900,
        ready: bool = True,
    ) -> Any:
        ctx = browser.new_context(viewport={"width": width, "height": height})
        page = ctx.new_page()
        errors: list[str] = []
        console: list[str] = []
        elsewhere: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.on(
            "request",
            lambda r: None if r.url.startswith((served.url, "data:")) else elsewhere.append(r.url),
        )
        page.errors = errors
        page.console_errors = console
        page.requests_elsewhere = elsewhere
        page.goto(served.url + "/" + fragment)
        if ready:
            page.wait_for_selector("body[data-ready=true]", timeout=10_000)
        pages.append(page)
        return page

    yield go
    for page in pages:
        assert page.errors == [], page.errors
        page.context.close()


def shot(page: Any, name: str, *, full: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


def row(page: Any, provider: str, model: str) -> Any:
    return page.locator(f'.model[data-provider="{provider}"][data-model="{model}"]')
