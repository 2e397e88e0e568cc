"""First run of ./scripts/bootstrap (what ./scripts/demo runs first) in a terminal: every step is
announced and pip's package list streams out, instead of a long silence.

The bootstrap script is copied into an empty project whose ``python3`` is a stand-in: it creates
``.venv/bin/python``, which answers ``pip install`` like pip does (one ``Collecting`` line per
package, then ``Successfully installed``). The script itself runs unchanged, in a pty.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FAKE_PIP = """#!/bin/sh
# stand-in for .venv/bin/python: `-m pip install -e .[dev]` prints what pip prints
case "$*" in
  *"install -e"*)
    for p in httpx pydantic ruamel.yaml; do echo "Collecting $p"; done
    echo "  Downloading something.whl (1.0 MB)"
    echo "Installing collected packages: httpx, pydantic, ruamel.yaml"
    echo "Successfully installed httpx pydantic ruamel.yaml" ;;
esac
"""

FAKE_PYTHON = """#!/bin/sh
# stand-in for python3: only `-m venv .venv` is used by bootstrap
mkdir -p .venv/bin
cat > .venv/bin/python <<'PIP'
{pip}PIP
chmod +x .venv/bin/python
"""


def _run_in_pty(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdin=follower, stdout=follower, stderr=follower, close_fds=True
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_first_run_announces_each_step(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "bootstrap", tmp_path / "scripts" / "bootstrap")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    fake = tmp_path / "fake-python3"
    fake.write_text(FAKE_PYTHON.format(pip=FAKE_PIP))
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake))
    code, out = _run_in_pty(["bash", "scripts/bootstrap"], tmp_path, env)
    assert code == 0, out
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    expected = [
        "bootstrap: creating the virtual environment .venv (first run only)",
        "bootstrap: installing dexto and its dependencies into .venv (the first run takes a "
        "minute or so)",
        "Collecting httpx",
        "Collecting pydantic",
        "Collecting ruamel.yaml",
        "Installing collected packages: httpx, pydantic, ruamel.yaml",
        "Successfully installed httpx pydantic ruamel.yaml",
        "bootstrap: done: .venv/bin/dexto is ready",
    ]
    assert lines == expected
    # The second run has nothing to do and says nothing.
    code, out = _run_in_pty(["bash", "scripts/bootstrap"], tmp_path, env)
    assert code == 0 and out.strip() == ""
