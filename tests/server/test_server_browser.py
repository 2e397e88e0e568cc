"""The web page in a real headless Chromium (Debian's, driven by Playwright) against a real
``dexto serve``. Screenshots of the main states go to ``test-artifacts/screenshots/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dexto.config.paths import DextoPaths
from dexto.llm.marketplace import write_cache
from tests._samples import SAMPLE_ROWS
from tests.server._serve import DEXTO_ONLY
from tests.server.conftest import StartServer, row, shot

pytestmark = pytest.mark.browser

GLM = "z-ai/glm-4.5-air:free"


def search(page: Any, text: str) -> None:
    page.fill("#search", text)
    page.wait_for_function("(q) => document.querySelector('#groups').dataset.query === q", arg=text)


def assert_no_key_in_page_storage(page: Any, secret: str) -> None:
    stored = page.evaluate(
        "JSON.stringify([Object.entries(localStorage), "
        "Object.entries(sessionStorage), document.cookie])"
    )
    assert secret not in stored and stored == '[[],[],""]'
    assert secret not in page.content()


def test_dexto_key_alone_makes_openrouter_selectable(
    serve: StartServer, isolated_env: Path, open_page: Any
) -> None:
    write_cache(DextoPaths(isolated_env), SAMPLE_ROWS)
    s = serve(DEXTO_ONLY)
    page = open_page(s)
    group = page.locator('.group[data-provider="openrouter"]')
    assert group.locator("h3").inner_text() == "Dexto Marketplace"
    assert page.locator('.group[data-provider="dexto"]').count() == 0
    assert "dexto" not in page.locator("#cm-provider option").evaluate_all(
        "opts => opts.map(o => o.value)"
    )
    shot(page, "01-dexto-key-only")
    search(page, "glm air free")
    target = row(page, "openrouter", GLM)
    assert target.get_attribute("data-selectable") == "true"
    assert target.locator(".badge").inner_text() == "via Dexto"
    assert target.locator(".price").inner_text() == "free"
    target.click()
    page.wait_for_function(
        "() => document.querySelector('#current-name').textContent.includes('GLM 4.5 Air')"
    )
    assert not page.locator("#key-dialog").is_visible()
    assert f"model: {GLM}" in s.agent.read_text()
    assert page.locator("#current .badge").first.inner_text() == "via Dexto"
    shot(page, "02-openrouter-selected-via-dexto")


def test_no_credentials_dialog_names_the_fix_and_takes_a_key(
    serve: StartServer, isolated_env: Path, open_page: Any
) -> None:
    s = serve()
    fix = s.get("/llm/catalog").json()["providers"]["anthropic"]["fix"]
    page = open_page(s)
    assert page.locator('#current [data-route="none"]').count() == 1
    anth = row(page, "anthropic", "claude-sonnet-4-5-20250929")
    assert anth.get_attribute("data-selectable") == "false"
    assert anth.locator(".badge").inner_text() == "not available"
    anth.click()
    dialog = page.locator("#key-dialog")
    dialog.wait_for(state="visible")
    assert page.locator("#key-fix").inner_text() == fix
    assert "dexto login" in fix and "ANTHROPIC_API_KEY" in fix
    assert page.locator("#key-label").inner_text() == "Paste your ANTHROPIC_API_KEY"
    shot(page, "03-no-credentials-key-dialog")
    secret = "sk-ant-api03-BROWSERSECRET"
    page.fill("#key-input", secret)
    page.click("#key-save")
    dialog.wait_for(state="hidden")
    page.wait_for_selector('.group[data-provider="anthropic"][data-route="direct"]')
    assert anth.locator(".badge").inner_text() == "your key"
    assert json.loads((isolated_env / "auth.json").read_text())["anthropic"]["key"] == secret
    assert_no_key_in_page_storage(page, secret)
    assert page.locator("#key-input").input_value() == ""
    shot(page, "04-key-saved-your-key")


def test_prefer_direct_with_a_key_shows_your_key(
    serve: StartServer, agent_file: Path, open_page: Any
) -> None:
    agent_file.write_text(agent_file.read_text().replace("prefer: dexto", "prefer: direct"))
    s = serve({**DEXTO_ONLY, "ANTHROPIC_API_KEY": "sk-ant-test-0123456789"})
    page = open_page(s)
    anth = row(page, "anthropic", "claude-sonnet-4-5-20250929")
    assert anth.locator(".badge").inner_text() == "your key"
    assert page.locator('#current .badge[data-route="direct"]').count() == 1
    assert row(page, "openai", "gpt-5").locator(".badge").inner_text() == "via Dexto"
    shot(page, "05-prefer-direct-your-key")


def test_custom_model_form_adds_a_selectable_model(
    serve: StartServer, isolated_env: Path, open_page: Any
) -> None:
    write_cache(DextoPaths(isolated_env), SAMPLE_ROWS)
    s = serve(DEXTO_ONLY)
    page = open_page(s)
    assert page.locator("#cm-provider").input_value() == "openrouter"
    assert "Dexto Marketplace" in page.locator("#cm-provider option:checked").inner_text()
    assert page.locator("#cm-own-key").is_visible()
    page.fill("#cm-name", "z-ai/glm-9-imaginary")
    page.wait_for_selector('#cm-validation[data-status="unknown"]')
    page.fill("#cm-name", "z-ai/glm-4.5-air")
    page.wait_for_selector('#cm-validation[data-status="known"]')
    page.fill("#cm-display", "My GLM Air")
    shot(page, "06-custom-model-form")
    page.click("#custom-form button[type=submit]")
    added = row(page, "openrouter", "z-ai/glm-4.5-air").filter(has_text="My GLM Air")
    added.wait_for()
    assert added.get_attribute("data-selectable") == "true"
    assert added.locator(".tag-custom").count() == 1
    added.click()
    page.wait_for_function(
        "() => document.querySelector('#current-name').textContent === 'My GLM Air'"
    )
    assert "model: z-ai/glm-4.5-air" in s.agent.read_text()
    shot(page, "07-custom-model-selected")
    page.select_option("#cm-provider", "openai-compatible")
    assert page.locator("#cm-baseurl").is_visible()
    page.fill("#cm-name", "qwen3-local")
    page.click("#custom-form button[type=submit]")
    page.locator("#cm-error").filter(has_text="baseURL").wait_for()


def test_prompt_via_dexto_then_fallback_after_credits_run_out(
    serve: StartServer, tmp_path: Path, open_page: Any
) -> None:
    from tests.server import _chat_stack as gw  # a broken helper must fail, not skip

    with gw.chat_stack(tmp_path) as stack:
        s = serve(stack.env)
        page = open_page(s)
        assert page.locator('#current .badge[data-route="dexto"]').count() == 1
        page.fill("#prompt", "hello from the page")
        page.click("#send")
        page.wait_for_selector('#answer-route[data-route="dexto"]', timeout=20_000)
        assert page.locator("#answer-route .badge").first.inner_text() == "via Dexto"
        assert page.locator("#answer-text").inner_text().strip()
        page.wait_for_function(
            r"() => /^-?\$\d/.test(document.querySelector('#credits')"
            ".textContent)"
        )
        shot(page, "08-chat-via-dexto")
        page.fill("#prompt", "and again, please")
        page.click("#send")
        page.wait_for_selector(
            '#answer-route[data-route="direct"][data-fell-back="true"]', timeout=20_000
        )
        assert page.locator("#answer-route .badge-fallback").inner_text() == "fallback"
        assert page.locator("#answer-route .badge").first.inner_text() == "your key"
        assert "fake-anthropic" in page.locator("#answer-text").inner_text()
        assert stack.direct_requests()[-1]["model"] == "claude-sonnet-4-5-20250929"
        shot(page, "09-chat-fallback-your-key")


def test_own_openrouter_key_is_an_advanced_option(
    serve: StartServer, isolated_env: Path, open_page: Any
) -> None:
    write_cache(DextoPaths(isolated_env), SAMPLE_ROWS)
    s = serve(DEXTO_ONLY)
    page = open_page(s)
    page.locator('.group[data-provider="openrouter"] button.link').click()
    page.locator("#key-dialog").wait_for(state="visible")
    assert page.locator("#key-title").inner_text() == "Use your own OpenRouter key"
    assert page.locator("#key-label").inner_text() == "Paste your OPENROUTER_API_KEY"
    page.fill("#key-input", "sk-or-v1-MYOWNKEY-0123")
    page.click("#key-save")
    page.locator("#key-dialog").wait_for(state="hidden")
    orr = s.get("/llm/catalog").json()["providers"]["openrouter"]
    assert orr["hasDirectKey"] and orr["effectiveRoute"] == "dexto"  # credits stay preferred
    page.wait_for_selector('.group[data-provider="openrouter"] button.link', state="detached")
    assert_no_key_in_page_storage(page, "sk-or-v1-MYOWNKEY-0123")


def test_page_with_a_token_in_the_fragment(serve: StartServer, open_page: Any) -> None:
    token = "page-token-0123456789"
    s = serve(DEXTO_ONLY, token=token)
    page = open_page(s, f"#token={token}")
    assert page.locator('#current .badge[data-route="dexto"]').count() == 1
    assert token not in page.evaluate(
        "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
