import httpx, json
from _gwhelpers import Gateway

def test_dbg(gateway: Gateway) -> None:
    h = {"Authorization": f"Bearer {gateway.key}"}
    bad = 0
    for i in range(30):
        for path, body in (("/v1/responses", {"model": "openai/gpt-4o-mini", "input": "hi", "stream": True}),
                           ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": [{"role":"user","content":"hi"}], "stream": True})):
            r = httpx.post(gateway.url + path, json=body, headers=h)
            t = r.text
            ok = "response.completed" in t if "responses" in path else "[DONE]" in t
            if not ok:
                bad += 1
                print("BAD", path, len(t), repr(t[-200:]))
    assert bad == 0
