"""``GET /llm/catalog`` and ``GET /llm/validate`` of a real ``dexto serve``: rows carry their own
route (equal to the decision for that row), the bundled snapshot answers without a cache, and a
saved marketplace model is one row."""

from __future__ import annotations

import json
from pathlib import Path

from tests.server._serve import DEXTO_ONLY
from tests.server.conftest import StartServer


def test_rows_carry_their_own_route_and_the_list_source(
    serve: StartServer, isolated_env: Path
) -> None:
    (isolated_env / "models").mkdir()
    (isolated_env / "models" / "custom-models.json").write_text(
        json.dumps(
            {
                "version": 1,
                "models": [
                    {"name": "my-model", "provider": "glama", "apiKeyEnv": "MY_GLAMA_KEY"},
                    {"name": "anthropic/claude-sonnet-4.5", "provider": "openrouter"},
                ],
            }
        )
    )
    s = serve({**DEXTO_ONLY, "MY_GLAMA_KEY": "g-test"})
    cat = s.get("/llm/catalog").json()
    assert cat["marketplace"]["source"] == "bundled" and cat["marketplace"]["count"] > 300
    glama = cat["providers"]["glama"]
    assert glama["effectiveRoute"] == "none"
    assert [(m["id"], m["effectiveRoute"]) for m in glama["models"]] == [("my-model", "direct")]
    orr = cat["providers"]["openrouter"]["models"]
    sonnet = [m for m in orr if m["id"] == "anthropic/claude-sonnet-4.5"]
    assert len(sonnet) == 1 and sonnet[0]["custom"] and sonnet[0]["effectiveRoute"] == "dexto"
    assert sonnet[0]["native"]["model"] == "claude-sonnet-4-5-20250929"
    v = s.get(
        "/llm/validate", params={"provider": "openrouter", "model": "anthropic/claude-3.7-sonnet"}
    ).json()
    assert (v["status"], v["marketplaceSource"]) == ("known", "bundled")
    assert "bundled" in v["message"]
    s.post("/llm/switch", json={"provider": "glama", "model": "my-model"})
    cur = s.get("/llm/current").json()
    assert cur["decision"]["route"] == "direct"
    assert cur["decision"]["credentialSource"] == "env:MY_GLAMA_KEY"
