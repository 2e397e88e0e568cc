"""The "Dexto Marketplace" group in a real headless Chromium against a real ``dexto serve``:
every marketplace model (bundled snapshot, no cache), featured first, filtered in place, paged;
rows that map to a native model offer "Run with my own <Provider> key"; a custom model that runs
on its own key is selectable although its provider has no key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.server._serve import DEXTO_ONLY
from tests.server.conftest import StartServer

pytestmark = pytest.mark.browser

GROUP = '.group[data-provider="openrouter"]'


def ids(page: Any) -> list[str]:
    return list(
        page.locator(f"{GROUP} .model").evaluate_all("rows => rows.map(r => r.dataset.model)")
    )


def test_marketplace_group_lists_pages_and_filters(serve: StartServer, open_page: Any) -> None:
    s = serve(DEXTO_ONLY)
    total = len(s.get("/llm/catalog").json()["providers"]["openrouter"]["models"])
    assert total > 300  # the bundled snapshot answers before any cache exists
    page = open_page(s)
    group = page.locator(GROUP)
    assert group.locator("h3").inner_text() == "Dexto Marketplace"
    first = ids(page)
    assert len(first) == 25
    featured = group.locator(".model").first.locator(".tag-featured")
    assert featured.count() == 1  # featured first
    assert f"of {total} models" in page.locator("#market-status").inner_text()
    page.click("#market-next")
    page.wait_for_function(
        "() => document.querySelector('#market-status').textContent.startsWith('26–50')"
    )
    assert set(ids(page)).isdisjoint(first)
    assert page.evaluate("document.activeElement.id") == "market-next"
    page.locator("#market-filter").press_sequentially("claude 3.7")
    page.wait_for_function(
        "() => document.querySelectorAll('.group[data-provider=\"openrouter\"] .model').length <= 3"
    )
    assert "anthropic/claude-3.7-sonnet" in ids(page)
    assert page.evaluate("document.activeElement.id") == "market-filter"
    assert page.locator("#market-pager, .market-pager").count() == 0


def test_run_with_my_own_key_switches_to_the_native_model(
    serve: StartServer, open_page: Any
) -> None:
    s = serve({**DEXTO_ONLY, "ANTHROPIC_API_KEY": "sk-ant-test-000000001"})
    r = s.post(
        "/llm/switch", json={"provider": "openrouter", "model": "anthropic/claude-sonnet-4.5"}
    )
    assert r.status_code == 200, r.text
    page = open_page(s)
    assert "claude-sonnet-4-5-20250929" not in page.locator("#current").inner_text()
    page.locator("#market-filter").fill("claude sonnet 4.5")
    page.wait_for_function(
        "() => document.querySelector("
        "'[data-native-model=\"claude-sonnet-4-5-20250929\"]') !== null"
    )
    offer = page.locator('[data-native-model="claude-sonnet-4-5-20250929"]')
    assert offer.inner_text() == "Run with my own Anthropic key"
    assert page.locator(f'{GROUP} [data-native-provider="z-ai"]').count() == 0
    offer.click()
    page.wait_for_function(
        "() => document.querySelector('#current').textContent"
        ".includes('claude-sonnet-4-5-20250929')"
    )
    assert "model: claude-sonnet-4-5-20250929" in s.agent.read_text()
    assert "provider: anthropic" in s.agent.read_text()


def test_a_custom_model_with_its_own_key_is_selectable(
    serve: StartServer, open_page: Any, isolated_env: Path
) -> None:
    (isolated_env / "models").mkdir()
    (isolated_env / "models" / "custom-models.json").write_text(
        json.dumps(
            {
                "version": 1,
                "models": [{"name": "my-model", "provider": "glama", "apiKeyEnv": "MY_GLAMA_KEY"}],
            }
        )
    )
    s = serve({"MY_GLAMA_KEY": "g-test-key"})
    page = open_page(s)
    target = page.locator('.model[data-provider="glama"][data-model="my-model"]')
    assert target.get_attribute("data-selectable") == "true"
    assert target.locator(".badge").inner_text() == "your key"


def test_without_credentials_rows_offer_to_add_the_native_key(
    serve: StartServer, open_page: Any
) -> None:
    page = open_page(serve())
    page.locator("#market-filter").fill("claude sonnet 4.5")
    offer = page.locator('[data-native-model="claude-sonnet-4-5-20250929"]')
    offer.wait_for(state="visible")
    offer.click()
    page.locator("#key-dialog").wait_for(state="visible")
    assert page.locator("#key-title").inner_text() == "Use your own Anthropic key"
