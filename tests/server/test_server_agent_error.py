"""A broken agent file (``provider: dexto``) served by a real ``dexto serve``: the catalog still
loads, ``/llm/current`` reports the file's error with a fix that works, and picking a model in
the page repairs the file through the comment-preserving edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.server._serve import DEXTO_ONLY, error_code
from tests.server.conftest import StartServer, row, shot

BROKEN = """\
# Hand-written agent — comments must survive the repair.
name: broken-agent   # the agent's name
llm:
  provider: dexto   # wrong: dexto is a route, not a provider
  model: anthropic/claude-sonnet-4.5
systemPrompt: |
  You are helpful.
"""
SONNET = "claude-sonnet-4-5-20250929"


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yml"
    path.write_text(BROKEN, "utf-8")
    return path


def test_api_reports_the_broken_file_and_switch_repairs_it(
    serve: StartServer, broken: Path
) -> None:
    s = serve(DEXTO_ONLY, agent=broken)
    catalog = s.get("/llm/catalog")
    assert catalog.status_code == 200
    assert catalog.json()["providers"]["anthropic"]["hasEffectiveCredentials"] is True
    cur = s.get("/llm/current").json()
    assert cur["agentFileError"] is True and cur["decision"] is None
    assert (cur["provider"], cur["model"]) == ("dexto", "anthropic/claude-sonnet-4.5")
    assert cur["error"]["code"] == "PROVIDER_NOT_ALLOWED"
    assert f"{broken}:4" in cur["error"]["message"]
    assert "POST /llm/switch" in cur["error"]["fix"]
    chat = s.post("/llm/chat", json={"prompt": "hi"})
    assert chat.status_code == 409 and error_code(chat) == "PROVIDER_NOT_ALLOWED"
    assert chat.json()["error"]["fix"] == cur["error"]["fix"]
    # the fix it names works in this state
    fixed = s.post("/llm/switch", json={"provider": "anthropic", "model": SONNET})
    assert fixed.status_code == 200, fixed.text
    body = fixed.json()
    assert body["agentFileError"] is False and body["decision"]["route"] == "dexto"
    text = broken.read_text()
    assert "provider: anthropic   # wrong: dexto is a route, not a provider" in text
    assert f"model: {SONNET}" in text
    assert text.startswith("# Hand-written agent — comments must survive the repair.")
    assert "systemPrompt: |\n  You are helpful.\n" in text


def test_unparseable_agent_file_still_serves_the_catalog(
    serve: StartServer, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("llm: [unclosed\n", "utf-8")
    s = serve(DEXTO_ONLY, agent=bad)
    assert s.get("/llm/catalog").status_code == 200
    cur = s.get("/llm/current").json()
    assert cur["agentFileError"] is True
    assert (cur["provider"], cur["model"]) == ("", "")
    assert cur["error"]["code"] == "INVALID_CONFIG" and str(bad) in cur["error"]["message"]


@pytest.mark.browser
def test_page_shows_the_error_and_a_pick_repairs_the_file(
    serve: StartServer, broken: Path, open_page: Any
) -> None:
    s = serve(DEXTO_ONLY, agent=broken)
    page = open_page(s)
    error = page.locator("#current-error")
    assert "provider 'dexto' cannot be selected" in error.inner_text()
    assert page.locator('#current [data-agent-error="true"]').count() == 1
    assert "pick a model in the list" in page.locator("#current .fix").inner_text()
    assert "Loading" not in page.locator("#current").inner_text()
    shot(page, "10-broken-agent-file")
    target = row(page, "anthropic", SONNET)
    assert target.get_attribute("data-selectable") == "true"
    target.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector('#current .badge[data-route="dexto"]')
    assert page.locator("#current-error").count() == 0
    assert "provider: anthropic   # wrong" in broken.read_text()
    shot(page, "11-broken-agent-file-repaired")
