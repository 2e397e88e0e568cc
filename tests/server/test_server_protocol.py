"""The agent server's protocol through a real running ``dexto serve``: OpenAPI, typed errors,
limits, security (token, loopback, DNS rebinding, cross-origin) and start-up."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import jsonschema

from tests._http import ModelsServer
from tests.server._serve import DEXTO, DEXTO_ONLY, error_code
from tests.server.conftest import StartServer

# --- protocol, limits, security --------------------------------------------------------------


def test_openapi_document(serve: StartServer) -> None:
    doc = serve().get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] and doc["info"]["version"]
    paths = doc["paths"]
    expected = {
        ("/llm/catalog", "get"),
        ("/llm/current", "get"),
        ("/llm/switch", "post"),
        ("/llm/custom-models", "get"),
        ("/llm/custom-models", "post"),
        ("/llm/custom-models/{name}", "delete"),
        ("/llm/validate", "get"),
        ("/llm/chat", "post"),
        ("/llm/keys", "post"),
        ("/ui/meta", "get"),
    }
    assert expected <= {(p, m) for p, ops in paths.items() for m in ops}
    assert "/" not in paths and not any("dexto" in p for p in paths)
    for ops in paths.values():
        for op in ops.values():
            assert op["responses"], op
            assert "422" not in op["responses"], op
            for status in ("403", "500"):
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["Error"]["properties"]["error"]["required"] == ["code", "message", "fix"]
    switch = paths["/llm/switch"]["post"]
    assert {"400", "413", "415"} <= set(switch["responses"])
    assert "401" not in switch["responses"] and "security" not in doc  # no token configured
    assert "409" in paths["/llm/chat"]["post"]["responses"]
    assert "404" in paths["/llm/custom-models/{name}"]["delete"]["responses"]
    _assert_refs_resolve(doc, doc)


def test_provider_schemas_accept_what_the_server_accepts(serve: StartServer) -> None:
    """The provider of ``/llm/switch`` (body) and of the ``provider`` query parameters accepts
    every provider ID in any ASCII case, as the server does, and nothing the server refuses;
    a mixed-case switch body valid by the document is answered 200."""
    s = serve(DEXTO_ONLY)
    doc = s.get("/openapi.json").json()
    body = doc["components"]["schemas"]["SwitchRequest"]
    query = [
        p["schema"]
        for path in ("/llm/catalog", "/llm/validate")
        for p in doc["paths"][path]["get"]["parameters"]
        if p["name"] == "provider"
    ]
    assert len(query) == 2
    ok = ["OpenAI", "openai", "OPENROUTER", "Anthropic", "openAI-Compatible", "xAI"]
    bad = ["dexto", "Dexto", "open ai", "openai ", "OpenAl", "Op\u212aenai", "", "openai/x"]
    for schema in [body["properties"]["provider"], *query]:
        v = jsonschema.Draft202012Validator(schema)
        assert [t for t in ok if not v.is_valid(t)] == [], schema
        assert [t for t in bad if v.is_valid(t)] == [], schema
    for t in ok + bad:
        if t:
            code = s.get("/llm/catalog", params={"provider": t}).status_code
            assert code == (200 if t in ok else 400), t
    switch = {"provider": "OpenRouter", "model": "Z-AI/GLM-4.5-Air:free"}
    jsonschema.Draft202012Validator(body).validate(switch)
    answer = s.post("/llm/switch", json=switch)
    assert answer.status_code == 200, answer.text
    assert answer.json()["provider"] == "openrouter"


def test_errors_match_the_document(serve: StartServer) -> None:
    """Each documented error status, provoked for real, answers the documented Error body."""
    s = serve(DEXTO_ONLY)
    cases = [
        s.post("/llm/switch", json={"provider": "dexto", "model": "x"}),  # 400
        s.get("/llm/current", headers={"host": "evil.example"}),  # 403
        s.delete("/llm/custom-models/nope"),  # 404
        s.post("/llm/switch", content=b"x=1", headers={"content-type": "text/plain"}),  # 415
        s.post("/llm/chat", json={"prompt": "   "}),  # 400: blank prompt
    ]
    assert [r.status_code for r in cases] == [400, 403, 404, 415, 400]
    for r in cases:
        assert error_code(r)
    allow = s.client.request("OPTIONS", "/llm/custom-models")
    assert allow.status_code == 405 and allow.headers["allow"] == "GET, POST"


def test_docs_page_and_assets_are_served_without_the_token(serve: StartServer) -> None:
    s = serve(token="docs-token-0123456789")
    anon = httpx.Client(base_url=s.url)
    page = anon.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "/docs/assets/swagger-ui-bundle.js" in page.text and "http" not in page.text
    js = anon.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    doc = anon.get("/openapi.json").json()
    assert doc["security"] == [{"bearer": []}]
    assert all("401" in op["responses"] for ops in doc["paths"].values() for op in ops.values())
    assert anon.get("/llm/current").status_code == 401
    anon.close()


def _assert_refs_resolve(node: object, doc: dict[str, object]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            target: object = doc
            for part in ref.removeprefix("#/").split("/"):
                assert isinstance(target, dict) and part in target, ref
                target = target[part]
        for v in node.values():
            _assert_refs_resolve(v, doc)
    elif isinstance(node, list):
        for v in node:
            _assert_refs_resolve(v, doc)


def test_unknown_paths_and_methods_are_typed(serve: StartServer) -> None:
    s = serve()
    assert (
        s.get("/llm/nothing").status_code == 404
        and error_code(s.get("/llm/nothing")) == "NOT_FOUND"
    )
    resp = s.client.put("/llm/switch", json={})
    assert resp.status_code == 405 and error_code(resp) == "METHOD_NOT_ALLOWED"


def test_body_size_limit(serve: StartServer) -> None:
    s = serve(DEXTO_ONLY)
    before = s.agent.read_bytes()
    huge = {"provider": "openai", "model": "x" * (300 * 1024)}
    resp = s.post("/llm/switch", json=huge)
    assert resp.status_code == 413 and error_code(resp) == "PAYLOAD_TOO_LARGE"

    def chunks() -> object:
        for _ in range(40):
            yield b"x" * 10_000

    streamed = s.post("/llm/chat", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert s.agent.read_bytes() == before


def test_dns_rebinding_and_cross_origin_writes_refused(serve: StartServer) -> None:
    s = serve(DEXTO_ONLY)
    assert s.get("/llm/catalog", headers={"host": "evil.example"}).status_code == 403
    resp = s.post(
        "/llm/switch",
        json={"provider": "openai", "model": "gpt-5"},
        headers={"origin": "http://evil.example"},
    )
    assert resp.status_code == 403 and error_code(resp) == "FORBIDDEN"
    assert s.get("/llm/current").json()["provider"] == "anthropic"


def test_writes_need_this_servers_full_origin(serve: StartServer) -> None:
    s = serve(DEXTO_ONLY)
    port = int(s.url.rsplit(":", 1)[1])
    body = {"provider": "openai", "model": "gpt-5"}
    refused = [
        f"https://127.0.0.1:{port}",
        f"http://127.0.0.1:{port + 1}",
        f"http://localhost:{port}",
        "null",
        "",
        f"http://127.0.0.1:{port}/path",
        f"http://user@127.0.0.1:{port}",
        f"ftp://127.0.0.1:{port}",
    ]
    for origin in refused:
        resp = s.post("/llm/switch", json=body, headers={"origin": origin})
        assert resp.status_code == 403 and error_code(resp) == "FORBIDDEN", origin
    assert s.get("/llm/current").json()["provider"] == "anthropic"
    # reads are not origin-checked; the server's own origin (any case) may write
    assert s.get("/llm/current", headers={"origin": "https://evil.example"}).status_code == 200
    ok = s.post("/llm/switch", json=body, headers={"origin": f"HTTP://127.0.0.1:{port}"})
    assert ok.status_code == 200 and ok.json()["provider"] == "openai"


def test_token_required_when_configured(serve: StartServer) -> None:
    s = serve(token="s3cret-token-value")
    assert s.get("/llm/catalog").status_code == 200  # the client sends the token
    anon = httpx.Client(base_url=s.url)  # no token
    resp = anon.get("/llm/catalog")
    assert resp.status_code == 401 and error_code(resp) == "UNAUTHORIZED"
    assert resp.headers["www-authenticate"].startswith("Bearer")
    wrong = anon.get("/llm/current", headers={"authorization": "Bearer nope-nope-nope"})
    assert wrong.status_code == 401
    assert anon.get("/").status_code == 200  # the page itself carries no data
    assert anon.get("/static/app.js").status_code == 200
    anon.close()


def test_non_loopback_bind_requires_a_token(isolated_env: Path, agent_file: Path) -> None:
    out = subprocess.run(
        [DEXTO, "serve", "--agent", str(agent_file), "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "DEXTO_HOME": str(isolated_env)},
    )
    assert out.returncode == 2
    assert "without a token" in out.stderr and "--token" in out.stderr


def test_serve_without_agent_uses_the_installed_default_agent(
    serve: StartServer, isolated_env: Path
) -> None:
    s = serve(DEXTO_ONLY, agent=None)
    cur = s.get("/llm/current").json()
    expected = isolated_env / "agents" / "default-agent" / "default-agent.yml"
    assert cur["agentFile"] == str(expected) and expected.is_file()
    assert cur["decision"]["route"] == "dexto"


def test_serve_with_a_missing_agent_file_says_so(isolated_env: Path) -> None:
    out = subprocess.run(
        [DEXTO, "serve", "--agent", str(isolated_env / "nope.yml")],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "DEXTO_HOME": str(isolated_env)},
    )
    assert out.returncode == 2
    assert "nope.yml" in out.stderr and "--agent" in out.stderr


def test_page_is_served_with_a_strict_policy(serve: StartServer) -> None:
    resp = serve().get("/")
    assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert '<script type="module" src="/static/app.js"></script>' in resp.text


def test_corrupt_local_file_is_a_typed_500_naming_it(
    serve: StartServer, isolated_env: Path
) -> None:
    s = serve()
    (isolated_env / "preferences.yml").write_text("preferDextoCredits: [unclosed\n")
    resp = s.get("/llm/catalog")
    assert resp.status_code == 500 and error_code(resp) == "INVALID_CONFIG"
    assert "preferences.yml" in resp.json()["error"]["message"]


def test_marketplace_is_refreshed_in_the_background(
    serve: StartServer, models_server: ModelsServer
) -> None:
    s = serve({**DEXTO_ONLY, "DEXTO_OPENROUTER_MODELS_URL": models_server.url}, args=())
    deadline = time.monotonic() + 15
    market: dict[str, object] = {}
    while time.monotonic() < deadline:
        market = s.get("/llm/catalog").json()["marketplace"]
        if market["state"] == "fresh":
            break
        time.sleep(0.1)
    assert market["state"] == "fresh" and models_server.hits == 1
    check = s.get("/llm/validate", params={"provider": "openrouter", "model": "z-ai/glm-4.5-air"})
    assert check.json()["status"] == "known"


def test_balance_is_shown_before_the_first_chat(serve: StartServer, tmp_path: Path) -> None:
    from tests.server._chat_stack import chat_stack

    with chat_stack(tmp_path, credits_micros=1_250_000) as stack:
        s = serve(stack.env)
        deadline = time.monotonic() + 15
        credits = None
        while time.monotonic() < deadline and credits is None:
            credits = s.get("/llm/current").json()["creditsRemaining"]
            time.sleep(0.1)
        assert credits is not None and float(credits["usd"]) == 1.25
        assert stack.direct_requests() == []  # nothing was sent to a provider
