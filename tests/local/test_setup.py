"""``dexto setup`` driven as a person would in a terminal (a real pty), and with flags."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dexto.agents.bundled import bundled_text
from tests.local.conftest import GatewayProc, Run, cli_env, file_mode

KEY = "sk-ant-api03-HIDDEN-SECRET-4242"


class Terminal:
    """A child process on a pseudo-terminal; ``expect`` waits for text, ``type`` presses keys."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            args,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.transcript = ""
        self._seen = 0

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # the child closed the terminal
                data = b""
            self.transcript += data.decode("utf-8", "replace").replace("\r\n", "\n")

    def expect(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.transcript, self._seen)
            if m:
                self._seen = m.end()
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {pattern!r}; got:\n{self.transcript}")
            self._read(0.1)

    def type(self, text: str) -> None:
        os.write(self.master, (text + "\r").encode())

    def menu_number(self, label: str) -> str:
        m = re.search(rf"^\s+(\d+)\) .*{re.escape(label)}", self.transcript, re.M)
        assert m, f"{label!r} not offered:\n{self.transcript}"
        return m.group(1)

    def finish(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        self._read(0.2)
        os.close(self.master)
        return self.proc.wait(timeout=5)


def _setup_terminal(env: dict[str, str] | None = None) -> Terminal:
    return Terminal([sys.executable, "-m", "dexto.cli.main", "setup"], cli_env(env))


def _agent(home: Path) -> Path:
    return home / "agents" / "default-agent" / "default-agent.yml"


def test_own_key_path_in_a_terminal(home: Path, dexto: Run) -> None:
    t = _setup_terminal()
    t.expect(r"Choose 1-2 \[1\]: ")
    t.type("7")
    t.expect("please enter a number from 1 to 2")
    t.type("2")
    t.expect(r"Which provider\?[\s\S]*Choose 1-\d+ \[1\]: ")
    assert "Dexto" not in t.transcript.split("Which provider?")[1]  # never a dexto provider
    t.type(t.menu_number("Anthropic"))
    t.expect(r"Paste your Anthropic API key \(input hidden\): ")
    t.type(KEY)
    t.expect("Stored your Anthropic key")
    t.expect(r"Which model\?[\s\S]*or type a model ID \[\d+\]: ")
    t.type(t.menu_number("claude-haiku-4-5-20251001"))
    t.expect("Saved anthropic/claude-haiku-4-5-20251001")
    t.expect("direct, with your own key")
    assert t.finish() == 0, t.transcript
    assert KEY not in t.transcript  # the key was not echoed
    bundled = bundled_text("default-agent").decode()
    assert _agent(home).read_text() == bundled.replace(
        "model: claude-sonnet-4-5-20250929", "model: claude-haiku-4-5-20251001"
    )
    assert json.loads((home / "auth.json").read_text()) == {
        "anthropic": {"type": "api", "key": KEY}
    }
    assert file_mode(home / "auth.json") == 0o600
    assert dexto("prefs", "get", "preferDextoCredits").stdout.strip() == "false"


@pytest.mark.slow
def test_dexto_credits_path_in_a_terminal(home: Path, gateway: GatewayProc, dexto: Run) -> None:
    env = {"DEXTO_GATEWAY_URL": gateway.url}
    t = _setup_terminal(env)
    t.expect(r"Choose 1-2 \[1\]: ")
    t.type("")  # Enter: the default, Dexto Credits
    code = t.expect(r"enter the code ([A-Z]{4}-[A-Z]{4})").group(1)
    assert gateway.approve(code).status_code == 200
    t.expect(f"Logged in as {re.escape(gateway.email)}")
    t.expect(r"Which provider\?[\s\S]*Choose 1-\d+ \[1\]: ")
    t.type(t.menu_number("OpenAI"))
    t.expect(r"Which model\?[\s\S]*or type a model ID \[\d+\]: ")
    t.type("bad id")
    t.expect("contains whitespace")
    t.expect(r"or type a model ID \[\d+\]: ")
    t.type("gpt-4.1")
    t.expect("Saved openai/gpt-4.1")
    t.expect("via Dexto credits")
    assert t.finish() == 0, t.transcript
    text = _agent(home).read_text()
    assert "provider: openai\n" in text and "model: gpt-4.1\n" in text
    assert "provider: dexto" not in text
    assert text.startswith("# Dexto default agent.")
    store = json.loads((home / "auth.json").read_text())
    assert list(store) == ["dexto"] and store["dexto"]["key"] not in t.transcript
    assert dexto("prefs", "get", "preferDextoCredits").stdout.strip() == "true"
    r = dexto("route", "--agent", str(_agent(home)), "--json")
    assert json.loads(r.stdout)["effectiveProvider"] == "dexto"


def test_cancel_with_end_of_input_writes_nothing(home: Path) -> None:
    t = _setup_terminal()
    t.expect(r"Choose 1-2 \[1\]: ")
    os.write(t.master, b"\x04")  # Ctrl-D
    assert t.finish() == 130
    assert "nothing was changed" in t.transcript
    assert not _agent(home).exists()


def test_scripted_byok_with_key_on_stdin(home: Path, dexto: Run) -> None:
    r = dexto(
        "setup",
        "--mode",
        "byok",
        "--provider",
        "groq",
        "--api-key-stdin",
        "--json",
        input="gsk_SECRET_123\n",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"] == "llama-3.3-70b-versatile" and out["decision"]["route"] == "direct"
    assert "gsk_SECRET_123" not in r.stdout + r.stderr
    assert json.loads((home / "auth.json").read_text())["groq"]["key"] == "gsk_SECRET_123"
    assert "provider: groq\n" in _agent(home).read_text()


@pytest.mark.slow
def test_scripted_credits_with_key_on_stdin(home: Path, dexto: Run, gateway: GatewayProc) -> None:
    r = dexto(
        "setup",
        "--mode",
        "credits",
        "--provider",
        "google",
        "--model",
        "gemini-2.5-pro",
        "--api-key-stdin",
        "--json",
        env={"DEXTO_GATEWAY_URL": gateway.url},
        input=gateway.api_key + "\n",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["decision"]["route"] == "dexto"
    assert json.loads((home / "auth.json").read_text())["dexto"]["key"] == gateway.api_key


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--mode", "credits", "--provider", "dexto"], "PROVIDER_NOT_ALLOWED", "dexto login"),
        (["--mode", "credits", "--provider", "ollama"], "INVALID_CONFIG", "--mode byok"),
        (["--mode", "byok", "--provider", "anthropic"], "NO_CREDENTIALS", "--api-key-stdin"),
        (["--mode", "byok"], "INVALID_CONFIG", "--provider"),
        (
            ["--mode", "byok", "--provider", "openai", "--model", "bad id"],
            "INVALID_MODEL_ID",
            "model ID",
        ),
        ([], "INVALID_CONFIG", "--mode"),
    ],
)
def test_scripted_errors_write_nothing(
    home: Path, dexto: Run, args: list[str], code: str, words: str
) -> None:
    r = dexto("setup", *args, "--json", env={"OPENAI_API_KEY": "sk-o"}, input="")
    assert r.returncode == 2, r.stdout
    err = json.loads(r.stdout)["error"]
    assert err["code"] == code and words in err["message"] + err["fix"]
    assert not _agent(home).exists()
    assert not (home / "preferences.yml").exists()


def test_invalid_agent_file_is_reported_and_kept(home: Path, dexto: Run) -> None:
    path = _agent(home)
    path.parent.mkdir(parents=True)
    text = "# mine\nllm:\n  provider: dexto\n  model: anthropic/claude-sonnet-4.5\n"
    path.write_text(text)
    r = dexto("setup", "--mode", "byok", "--provider", "openai", env={"OPENAI_API_KEY": "sk-o"})
    assert r.returncode == 2
    assert f"{path}:3" in r.stderr and "dexto login" in r.stderr
    assert path.read_text() == text


def test_user_edits_survive_setup(home: Path, dexto: Run) -> None:
    path = _agent(home)
    path.parent.mkdir(parents=True)
    text = (
        "# my agent\nllm:\n  provider: anthropic   # who\n  model: claude-opus-4-7\n"
        "  temperature: 0.2   # keep me\nmcpServers: {fs: {command: npx}}\n"
    )
    path.write_text(text)
    r = dexto(
        "setup",
        "--mode",
        "byok",
        "--provider",
        "openai",
        "--model",
        "gpt-5-mini",
        env={"OPENAI_API_KEY": "sk-o"},
    )
    assert r.returncode == 0, r.stderr
    assert path.read_text() == text.replace("anthropic   #", "openai   #").replace(
        "claude-opus-4-7", "gpt-5-mini"
    )
