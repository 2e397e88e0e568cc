"""Issue #13, the newcomer's fumbles: each one through the real ``dexto`` console script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from dexto.cli.custom_models_cmd import reference_name
from tests.cli.conftest import DEXTO, Run

KEY = "sk-ant-api03-" + "x" * 40


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout


def _setup_byok(dexto: Run, *extra: str) -> None:
    done = dexto(
        "setup",
        "--mode",
        "byok",
        "--provider",
        "anthropic",
        "--api-key-stdin",
        *extra,
        input=KEY + "\n",
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["models"],
        ["prefs", "list"],
        ["route", "anthropic/claude-sonnet-4-5-20250929"],
        ["auth", "list"],
    ],
)
def test_output_piped_into_head_that_has_exited_is_quiet(
    isolated_env: Path, args: list[str]
) -> None:
    """`dexto … | head`: the reader is gone before dexto writes; no traceback, exit 141."""
    head = subprocess.Popen(["head", "-n", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert head.stdin is not None
    head.stdin.write(b"first line\n")
    head.stdin.flush()
    head.wait(timeout=10)  # head has read its one line and closed its end of the pipe
    env = dict(os.environ, ANTHROPIC_API_KEY=KEY)
    proc = subprocess.run(
        [DEXTO, *args], stdout=head.stdin, stderr=subprocess.PIPE, env=env, text=True, timeout=60
    )
    head.stdin.close()
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


def test_route_agent_directory_names_the_problem(dexto: Run, tmp_path: Path) -> None:
    folder = tmp_path / "my-agent"
    folder.mkdir()
    (folder / "my-agent.yml").write_text("llm: {provider: anthropic, model: x}\n")
    proc = dexto("route", "--agent", str(folder))
    _no_traceback(proc)
    assert proc.returncode == 2
    assert "is a directory" in proc.stderr and "my-agent.yml" in proc.stderr
    assert "llm section" not in proc.stderr


def test_missing_and_unreadable_agent_files_get_their_own_fix(dexto: Run, tmp_path: Path) -> None:
    proc = dexto("route", "--agent", str(tmp_path / "nope.yml"))
    _no_traceback(proc)
    assert proc.returncode == 2 and "no such agent file" in proc.stderr
    assert "llm section" not in proc.stderr and "default-agent" in proc.stderr
    locked = tmp_path / "locked.yml"
    locked.write_text("llm: {provider: anthropic, model: claude-sonnet-4-5-20250929}\n")
    locked.chmod(0)
    if os.access(locked, os.R_OK):
        pytest.skip("running as root: a mode-0 file is still readable")
    proc = dexto("route", "--agent", str(locked))
    _no_traceback(proc)
    assert proc.returncode == 2 and "permission denied" in proc.stderr
    assert f"chmod u+r {locked}" in proc.stderr


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_prompt_is_refused_before_any_request(dexto: Run, prompt: str) -> None:
    # The key points at a port where nothing listens: any request would be an UPSTREAM_ERROR.
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/v1"}
    proc = dexto("chat", "anthropic/claude-sonnet-4-5-20250929", "-m", prompt, "--json", env=env)
    assert proc.returncode == 2
    err = json.loads(proc.stdout)["error"]
    assert err["code"] == "INVALID_CONFIG" and "prompt is empty" in err["message"]


def test_chat_max_tokens_is_validated(dexto: Run) -> None:
    proc = dexto("chat", "anthropic/claude-sonnet-4-5-20250929", "-m", "hi", "--max-tokens", "0")
    assert proc.returncode == 2 and "positive whole number" in proc.stderr
    _no_traceback(proc)


def test_plain_route_and_chat_use_the_default_agent_after_setup(dexto: Run) -> None:
    before = dexto("route")
    assert before.returncode == 2 and "dexto setup" in before.stderr
    _setup_byok(dexto)
    route = dexto("route", "--json")
    assert route.returncode == 0, route.stderr
    assert json.loads(route.stdout)["provider"] == "anthropic"
    # chat uses the same agent: it reaches the (unreachable) endpoint instead of refusing.
    chat = dexto("chat", "-m", "hi", "--json", env={"ANTHROPIC_BASE_URL": "http://127.0.0.1:9/v1"})
    assert json.loads(chat.stdout)["error"]["code"] == "UPSTREAM_ERROR"
    by_id = dexto("route", "--agent", "default-agent", "--json")
    assert by_id.returncode == 0 and json.loads(by_id.stdout)["model"].startswith("claude")


def test_default_agent_preference_is_honoured_and_validated(dexto: Run) -> None:
    refused = dexto("prefs", "set", "defaultAgent", "nope")
    assert refused.returncode == 2
    assert "no agent named 'nope'" in refused.stderr and "coding-agent" in refused.stderr
    assert dexto("prefs", "get", "defaultAgent").stdout.strip() == "null"
    _setup_byok(dexto, "--agent", "research-agent")
    assert dexto("prefs", "get", "defaultAgent").stdout.strip() == '"research-agent"'
    route = dexto("route", "--json")
    assert route.returncode == 0, route.stderr


def test_prefs_backups_keep_the_newest_ten(dexto: Run, isolated_env: Path) -> None:
    path = isolated_env / "preferences.yml"
    path.write_text("# mine\nlowCreditsWarningUsd: 0\n")
    for i in range(1, 14):
        assert dexto("prefs", "set", "lowCreditsWarningUsd", str(i)).returncode == 0
    backups = sorted(isolated_env.glob("preferences.yml.*.bak"))
    assert len(backups) == 10
    # The newest backup holds the value before the last write; the oldest ones were deleted.
    assert backups[-1].read_text() == "# mine\nlowCreditsWarningUsd: 12.0\n"
    assert backups[0].read_text() == "# mine\nlowCreditsWarningUsd: 3.0\n"


def test_invalid_custom_model_is_repaired_by_add_replace(dexto: Run, isolated_env: Path) -> None:
    path = isolated_env / "models" / "custom-models.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "note": "mine",
                "models": [
                    {"name": "m1", "provider": "litellm"},
                    {"name": "ok", "provider": "ollama"},
                ],
            }
        )
    )
    listed = dexto("models")
    assert listed.returncode == 2 and "baseURL is required" in listed.stderr
    assert "`dexto models add --provider litellm --name m1 … --replace`" in listed.stderr
    missing = dexto("models", "add", "--provider", "litellm", "--name", "m1", "--replace")
    assert missing.returncode == 2 and "pass --base-url URL" in missing.stderr
    fixed = dexto(
        "models",
        "add",
        "--provider",
        "litellm",
        "--name",
        "m1",
        "--replace",
        "--base-url",
        "http://127.0.0.1:4000/v1",
    )
    assert fixed.returncode == 0, fixed.stderr
    doc = json.loads(path.read_text())
    assert doc["note"] == "mine"
    assert doc["models"] == [
        {"name": "m1", "provider": "litellm", "baseURL": "http://127.0.0.1:4000/v1"},
        {"name": "ok", "provider": "ollama"},
    ]
    assert dexto("models").returncode == 0


def test_empty_auth_set_describes_that_providers_key(dexto: Run) -> None:
    proc = dexto("auth", "set", "openai", input="\n")
    assert proc.returncode == 2
    assert "OpenAI API key" in proc.stderr and "sk-…" in proc.stderr
    assert "dxk_" not in proc.stderr


@pytest.mark.parametrize("action", ["remove", "set"])
def test_auth_typo_gets_did_you_mean(dexto: Run, action: str) -> None:
    proc = dexto("auth", action, "anthropc", input="sk-ant-x\n")
    assert proc.returncode == 2
    assert "did you mean anthropic?" in proc.stderr


def test_duplicate_auth_entries_are_refused_and_the_fix_works(
    dexto: Run, isolated_env: Path
) -> None:
    path = isolated_env / "auth.json"
    path.write_text(
        '{"anthropic": {"type": "api", "key": "sk-ant-one"},\n'
        ' "openai": {"type": "api", "key": "sk-two"},\n'
        ' "anthropic": {"type": "api", "key": "sk-ant-three"}}\n'
    )
    path.chmod(0o600)
    listed = dexto("auth", "list")
    assert listed.returncode == 2 and "given twice" in listed.stderr
    assert "sk-ant" not in listed.stderr + listed.stdout
    # Nothing is silently merged: storing another key is refused, the file is unchanged.
    before = path.read_text()
    assert dexto("auth", "set", "groq", input="gsk_abcdefgh\n").returncode == 2
    assert path.read_text() == before
    assert "`dexto auth remove anthropic`" in listed.stderr
    assert dexto("auth", "remove", "anthropic").returncode == 0
    assert json.loads(path.read_text()) == {"openai": {"type": "api", "key": "sk-two"}}


def test_unset_key_reference_is_an_error_naming_the_variable(dexto: Run, tmp_path: Path) -> None:
    agent = tmp_path / "agent.yml"
    agent.write_text(
        "llm:\n  provider: anthropic\n  model: claude-sonnet-4-5-20250929\n  apiKey: $MY_KEY\n"
    )
    env = {"ANTHROPIC_API_KEY": KEY}  # present, but the agent asked for MY_KEY
    proc = dexto("route", "--agent", str(agent), "--json", env=env)
    assert proc.returncode == 2
    err = json.loads(proc.stdout)["error"]
    assert err["code"] == "NO_CREDENTIALS" and "$MY_KEY" in err["message"]
    assert "export MY_KEY=" in err["fix"]
    ok = dexto("route", "--agent", str(agent), "--json", env={"MY_KEY": KEY})
    assert json.loads(ok.stdout)["credentialSource"] == "env:MY_KEY"


def test_unset_api_key_env_of_a_custom_model_never_sends_no_key(dexto: Run) -> None:
    added = dexto(
        "models",
        "add",
        "--provider",
        "litellm",
        "--name",
        "m1",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--api-key-env",
        "MY_LL_KEY",
    )
    assert added.returncode == 0, added.stderr
    assert "export MY_LL_KEY=" in added.stdout
    proc = dexto("chat", "litellm/m1", "-m", "hi", "--json")
    assert proc.returncode == 2
    err = json.loads(proc.stdout)["error"]
    assert err["code"] == "NO_CREDENTIALS" and "$MY_LL_KEY" in err["message"]
    ok = dexto("route", "litellm/m1", "--json", env={"MY_LL_KEY": "sk-litellm"})
    assert json.loads(ok.stdout)["credentialSource"] == "env:MY_LL_KEY"


def test_chat_max_tokens_reaches_the_provider(dexto: Run) -> None:
    """`--max-tokens N` is sent as the request's max_tokens (a real loopback OpenAI stand-in)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = json.dumps(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": "gpt-4o-mini",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "hello"},
                        }
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        env = {
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{httpd.server_address[1]}/v1",
        }
        proc = dexto(
            "chat", "openai/gpt-4o-mini", "-m", "hi", "--max-tokens", "7", "--json", env=env
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["text"] == "hello"
    assert seen and seen[0]["max_tokens"] == 7


def test_prefs_key_typo_gets_did_you_mean(dexto: Run) -> None:
    proc = dexto("prefs", "set", "preferDextoCredit", "true")
    assert proc.returncode == 2
    assert "did you mean preferDextoCredits?" in proc.stderr


def test_missing_stored_key_of_a_custom_model_is_an_error_and_the_fix_works(dexto: Run) -> None:
    base = ["--provider", "litellm", "--name", "m1", "--base-url", "http://127.0.0.1:9/v1"]
    assert dexto("models", "add", *base, "--api-key", "sk-litellm-one").returncode == 0
    ref = reference_name("litellm", "m1")
    assert dexto("auth", "remove", ref).returncode == 0
    proc = dexto("route", "litellm/m1", "--json", env={"LITELLM_API_KEY": "sk-other"})
    assert proc.returncode == 2  # never the other key, never no key
    err = json.loads(proc.stdout)["error"]
    assert err["code"] == "NO_CREDENTIALS" and ref in err["message"]
    assert "--api-key - --replace" in err["fix"]
    fixed = dexto("models", "add", *base, "--api-key", "-", "--replace", input="sk-litellm-two\n")
    assert fixed.returncode == 0, fixed.stderr
    ok = dexto("route", "litellm/m1", "--json")
    assert json.loads(ok.stdout)["credentialSource"] == f"auth-store:{ref}"
