"""The public surface is exactly what we mean."""

import importlib

import pytest

import dexto

EXPECTED = {
    "AuthFailedError",
    "ConfigError",
    "DextoError",
    "ExecutionError",
    "InsufficientCreditsError",
    "InvalidModelIdError",
    "MissingExtraError",
    "NoCredentialsError",
    "ProviderNotAllowedError",
    "RouteDecision",
    "RoutingContext",
    "RoutingPolicy",
    "Selection",
    "UnknownProviderError",
    "UpstreamError",
    "__version__",
    "build_context",
    "decide",
    "parse_selection",
    # execution (loaded lazily)
    "ChatResult",
    "Done",
    "Model",
    "RouteTaken",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "open_model",
}


def test_all_is_exact() -> None:
    assert set(dexto.__all__) == EXPECTED
    missing = [name for name in dexto.__all__ if not hasattr(dexto, name)]
    assert missing == []


def test_errors_share_one_base_and_have_codes() -> None:
    errors = [getattr(dexto, n) for n in dexto.__all__ if n.endswith("Error")]
    codes = {e.code for e in errors}
    assert all(issubclass(e, dexto.DextoError) for e in errors)
    assert len(codes) == len(errors)  # every error class has its own code


def _modules() -> list[str]:
    from pathlib import Path

    src = Path(dexto.__file__).resolve().parent.parent
    return [
        ".".join(p.relative_to(src).with_suffix("").parts)
        for p in sorted((src / "dexto").rglob("*.py"))
        if p.name not in ("__init__.py", "_version.py")
    ]


@pytest.mark.parametrize("name", _modules())
def test_every_module_has_a_curated_all(name: str) -> None:
    """Each module says what it exports, and every name it lists exists."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"{name} has no __all__"
    assert len(set(exported)) == len(exported)
    assert [n for n in exported if not hasattr(module, n)] == []
