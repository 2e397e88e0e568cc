"""The public surface is exactly what we mean."""

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
