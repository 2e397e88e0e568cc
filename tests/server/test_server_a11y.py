"""Keyboard and screen-reader behaviour of the page in Chromium against a real ``dexto serve``:
a keyboard-only walkthrough (search, pick a model, send a prompt), focus kept across
re-renders, list semantics, the token dialog (label, Escape, no retry loop, token removed from
the address) and the header at 400 px."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dexto.config.paths import DextoPaths
from tests.server import _chat_stack
from tests.server._serve import DEXTO_ONLY
from tests.server.conftest import StartServer, row, shot

pytestmark = pytest.mark.browser

HAIKU = "claude-haiku-4-5-20251001"
ACTIVE = (
    "() => { const a = document.activeElement; return a === document.body ? 'BODY' : "
    "(a.dataset.focusKey || a.id || a.tagName); }"
)


def active(page: Any) -> str:
    return str(page.evaluate(ACTIVE))


def press_until(page: Any, key: str, want: str, limit: int = 12) -> None:
    """Press ``key`` until the focused element is ``want`` (by focus key or id)."""
    for _ in range(limit):
        if active(page) == want:
            return
        page.keyboard.press(key)
    assert active(page) == want


def test_keyboard_only_walkthrough(serve: StartServer, tmp_path: Path, open_page: Any) -> None:
    with _chat_stack.chat_stack(tmp_path) as stack:
        s = serve(stack.env)
        page = open_page(s)
        page.keyboard.press("Tab")
        assert active(page) == "A"  # the first skip link
        page.keyboard.press("Enter")
        assert active(page) == "search"
        page.keyboard.type("haiku 4.5")
        page.wait_for_function(
            "() => document.querySelector('#groups').dataset.query === 'haiku 4.5'"
        )
        page.keyboard.press("ArrowDown")
        press_until(page, "ArrowDown", f"model:anthropic:{HAIKU}")
        page.keyboard.press("Enter")
        page.wait_for_function(
            "() => document.querySelector('#current-name').textContent === 'Claude Haiku 4.5'"
        )
        assert active(page) == f"model:anthropic:{HAIKU}"  # the re-render kept focus
        assert f"model: {HAIKU}" in s.agent.read_text()
        press_until(page, "ArrowUp", "search", limit=40)
        page.keyboard.press("Shift+Tab")
        press_until(page, "Shift+Tab", "A", limit=6)
        assert page.evaluate("document.activeElement.dataset.skip") == "prompt"
        page.keyboard.press("Enter")
        assert active(page) == "prompt"
        page.keyboard.type("hello from the keyboard")
        press_until(page, "Tab", "send", limit=3)
        page.keyboard.press("Enter")
        page.wait_for_selector('#answer-route[data-route="dexto"]', timeout=20_000)
        assert page.locator("#answer-text").inner_text().strip()
        assert stack.direct_requests() == []
        shot(page, "12-keyboard-walkthrough")


def test_focus_survives_dialogs_and_rerenders(
    serve: StartServer, isolated_env: Path, open_page: Any
) -> None:
    # 30 custom ollama models: more than one screenful, so the group has a "Show all" button
    models = [{"name": f"local-model-{i:02d}", "provider": "ollama"} for i in range(30)]
    path = DextoPaths(isolated_env).custom_models
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "models": models}), "utf-8")
    s = serve()
    page = open_page(s)
    anth = row(page, "anthropic", HAIKU)
    anth.focus()
    page.keyboard.press("Enter")  # not selectable: the key dialog opens
    page.locator("#key-dialog").wait_for(state="visible")
    assert active(page) == "key-input"
    page.keyboard.press("Escape")
    page.locator("#key-dialog").wait_for(state="hidden")
    assert active(page) == f"model:anthropic:{HAIKU}"
    page.keyboard.press("Enter")
    page.locator("#key-dialog").wait_for(state="visible")
    page.keyboard.type("sk-ant-api03-KEYBOARD-0123")
    page.keyboard.press("Enter")
    page.wait_for_selector('.group[data-provider="anthropic"][data-route="direct"]')
    assert active(page) == f"model:anthropic:{HAIKU}"  # a new element, found again
    # "Show all" disappears when pressed: focus moves to the first row it revealed
    more = page.locator('[data-focus-key="more:ollama"]')
    more.focus()
    nxt = more.get_attribute("data-focus-next")
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-focus-key="more:ollama"]', state="detached")
    assert nxt and nxt.startswith("model:ollama:") and active(page) == nxt


def test_lists_hold_listitems(serve: StartServer, open_page: Any) -> None:
    page = open_page(serve(DEXTO_ONLY))
    shapes = page.evaluate("""() => [...document.querySelectorAll('[role=list]')].map(l =>
        [...l.children].map(c => c.getAttribute('role') + '>' +
            [...c.children].map(g => g.tagName).join(',')))""")
    assert shapes and all(items for items in shapes)
    assert {item for items in shapes for item in items} == {"listitem>BUTTON"}
    assert page.get_by_role("listitem").count() == page.locator(".model").count()


def test_token_dialog_escape_label_and_retry(serve: StartServer, open_page: Any) -> None:
    token = "dialog-token-0123456789"
    s = serve(DEXTO_ONLY, token=token)
    page = open_page(s, ready=False)
    metas: list[int] = []
    page.on("response", lambda r: metas.append(r.status) if r.url.endswith("/ui/meta") else None)
    dialog = page.locator("#token-dialog")
    dialog.wait_for(state="visible")
    assert page.get_by_label("Server token").get_attribute("id") == "token-input"
    assert active(page) == "token-input"
    page.keyboard.press("Escape")
    page.locator("#boot-error").wait_for()
    assert "bearer token" in page.locator("#boot-error").inner_text()
    assert dialog.evaluate("d => d.open") is False
    assert metas == [401]  # dismissed: no retry, no second prompt
    page.locator("#boot-retry").focus()
    page.keyboard.press("Enter")
    dialog.wait_for(state="visible")
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-ready=true]")
    assert metas == [401, 401, 200]
    assert page.locator('#current .badge[data-route="dexto"]').count() == 1


def test_token_is_removed_from_the_address(serve: StartServer, open_page: Any) -> None:
    token = "hash-token-0123456789"
    s = serve(DEXTO_ONLY, token=token)
    page = open_page(s, f"#token={token}&view=compact")
    assert page.evaluate("location.hash") == "#view=compact"
    assert token not in page.evaluate("location.href")
    assert page.locator('#current .badge[data-route="dexto"]').count() == 1


@pytest.mark.parametrize("env", [DEXTO_ONLY, {}], ids=["logged-in", "logged-out"])
def test_header_at_400px_does_not_overlap(
    serve: StartServer, open_page: Any, env: dict[str, str]
) -> None:
    page = open_page(serve(env), width=400, height=800)
    boxes = page.evaluate("""() => {
        const box = (s) => document.querySelector(s).getBoundingClientRect().toJSON();
        const over = (s) => { const e = document.querySelector(s);
                              return e.scrollWidth > e.clientWidth; };
        return {brand: box('.brand'), account: box('#account'), bar: box('.topbar'),
                current: box('#current'), overflow: over('.brand') || over('#account'),
                pageWidth: document.documentElement.scrollWidth};
    }""")
    brand, account = boxes["brand"], boxes["account"]
    apart = brand["right"] <= account["left"] or account["top"] >= brand["bottom"]
    assert apart, boxes
    assert not boxes["overflow"] and boxes["pageWidth"] <= 400
    assert boxes["bar"]["bottom"] <= boxes["current"]["top"]
    for b in (brand, account):
        assert b["left"] >= 0 and b["right"] <= 400
    shot(page, f"13-header-400px-{'in' if env else 'out'}")
