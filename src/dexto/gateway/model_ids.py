"""Model-ID validation: checked before any hold, so a bad ID never reaches the upstream."""

from __future__ import annotations

import unicodedata

__all__ = ["MAX_MODEL_ID", "model_id_problem"]

MAX_MODEL_ID = 200


def model_id_problem(model: object) -> str:
    """ "" when ``model`` is a usable model ID, else the message naming the fix."""
    if not isinstance(model, str) or not model:
        return "'model' must be a non-empty string such as 'openai/gpt-4o-mini'."
    if len(model) > MAX_MODEL_ID:
        return f"'model' is longer than {MAX_MODEL_ID} characters; use an ID from GET /v1/models."
    if model.isascii() and model.isprintable() and " " not in model:
        return ""  # printable ASCII other than the space: no whitespace, no control character
    for ch in model:
        if ch.isspace() or unicodedata.category(ch).startswith("C"):
            return (
                f"'model' contains whitespace or a control character ({ch!r}); "
                "use an ID from GET /v1/models, e.g. 'openai/gpt-4o-mini'."
            )
    return ""
