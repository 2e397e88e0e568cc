"""A DEXTO_HOME (or a file in it) that cannot be used: a typed error and a fix, no traceback."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import Run

KEY = "sk-proj-" + "x" * 48

# (argv, stdin) for commands that read or write files under DEXTO_HOME
MODELS = (["models"], None)
ROUTE = (["route", "openai/gpt-4o"], None)
AUTH_LIST = (["auth", "list"], None)
AUTH_SET = (["auth", "set", "openai", "--stdin"], KEY + "\n")
AUTH_REMOVE = (["auth", "remove", "openai"], None)
LOGOUT = (["logout"], None)
WHOAMI = (["whoami"], None)
SETUP = (["setup", "--mode", "byok", "--provider", "openai", "--api-key-stdin"], KEY + "\n")
AGENTS_LIST = (["agents", "list"], None)
AGENTS_INSTALL = (["agents", "install", "coding-agent"], None)
PREFS_SET = (["prefs", "set", "preferDextoCredits", "true"], None)
MIGRATE = (["gateway", "migrate"], None)


def _refused(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "error: " in proc.stderr and "fix: " in proc.stderr, proc.stderr
    return proc.stderr


@pytest.mark.parametrize(
    "command",
    [MODELS, ROUTE, AUTH_LIST, AUTH_SET, AUTH_REMOVE, LOGOUT, WHOAMI, SETUP],
    ids=lambda c: " ".join(c[0]),
)
def test_auth_store_that_is_a_directory(
    dexto: Run, isolated_env: Path, command: tuple[list[str], str | None]
) -> None:
    store = isolated_env / "auth.json"
    store.mkdir()
    (store / "kept.txt").write_text("mine\n")
    args, stdin = command
    err = _refused(dexto(*args, input=stdin))
    assert f"{store}: is a directory, not a file" in err
    assert f"mv {store} {store}.moved" in err
    assert (store / "kept.txt").read_text() == "mine\n"


@pytest.mark.parametrize(
    "command",
    [MODELS, ROUTE, AUTH_LIST, AUTH_SET, SETUP, AGENTS_LIST, AGENTS_INSTALL, PREFS_SET, MIGRATE],
    ids=lambda c: " ".join(c[0]),
)
def test_dexto_home_that_is_a_regular_file(
    dexto: Run, tmp_path: Path, command: tuple[list[str], str | None]
) -> None:
    home = tmp_path / "home-file"
    home.write_text("not a directory\n")
    args, stdin = command
    err = _refused(dexto(*args, input=stdin, env={"DEXTO_HOME": str(home)}))
    assert f"the dexto home {home} (DEXTO_HOME) is a file, not a directory" in err
    assert "point DEXTO_HOME at a directory" in err
    assert home.read_text() == "not a directory\n"


def _mkdir_refused(path: Path) -> bool:
    try:
        path.mkdir()
    except OSError as exc:
        return exc.errno in (errno.EPERM, errno.EACCES, errno.EROFS)
    path.rmdir()
    return False


UNCREATABLE = Path("/sys/dexto")


@pytest.mark.skipif(
    not os.path.isdir("/sys/kernel") or not _mkdir_refused(UNCREATABLE),
    reason="needs a sysfs /sys where mkdir is refused",
)
@pytest.mark.parametrize(
    "command", [PREFS_SET, AUTH_SET, SETUP, AGENTS_INSTALL, MIGRATE], ids=lambda c: " ".join(c[0])
)
def test_dexto_home_that_cannot_be_created(
    dexto: Run, command: tuple[list[str], str | None]
) -> None:
    args, stdin = command
    err = _refused(dexto(*args, input=stdin, env={"DEXTO_HOME": str(UNCREATABLE)}))
    assert f"cannot create the dexto home {UNCREATABLE} (DEXTO_HOME)" in err
    assert "point DEXTO_HOME at a directory you can write to" in err


def test_models_still_lists_when_the_cache_directory_is_a_file(
    dexto: Run, isolated_env: Path
) -> None:
    """The marketplace cache is best effort: a file where ``cache/`` belongs is not an error."""
    (isolated_env / "cache").write_text("in the way\n")
    proc = dexto("models")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert (isolated_env / "cache").read_text() == "in the way\n"
