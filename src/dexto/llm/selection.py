"""Selections: the semantic ``(provider, model)`` a config names (SPEC §1)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator

from dexto.errors import InvalidModelIdError
from dexto.llm.providers import canonical_provider_id, get_provider

__all__ = ["ProviderId", "Selection", "parse_selection", "validate_model_id"]

_MAX_MODEL_LEN = 256
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")

#: A provider ID field of a config model, held in its canonical spelling (``OpenAI`` → ``openai``).
ProviderId = Annotated[str, AfterValidator(canonical_provider_id)]


@dataclass(frozen=True, slots=True)
class Selection:
    """``provider`` is held in its canonical spelling (``OpenAI`` → ``openai``); ``model`` as
    given."""

    provider: str
    model: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "provider", canonical_provider_id(self.provider))

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


def validate_model_id(model: object, *, field: str = "model", file: str | None = None) -> str:
    """Return ``model`` if it is a well-formed model ID, else raise ``InvalidModelIdError``."""
    fix = "use the provider's model ID, e.g. claude-sonnet-4-5-20250929 or z-ai/glm-4.5-air:free"
    if not isinstance(model, str) or not model:
        raise InvalidModelIdError(
            "model ID is empty or not a string", fix=fix, field=field, file=file
        )
    if len(model) > _MAX_MODEL_LEN:
        raise InvalidModelIdError(
            f"model ID is longer than {_MAX_MODEL_LEN} characters", fix=fix, field=field, file=file
        )
    if _BAD_CHARS.search(model) or model.startswith("/") or model.endswith("/"):
        raise InvalidModelIdError(
            f"model ID {model!r} contains whitespace, control characters or a leading/trailing '/'",
            fix=fix,
            field=field,
            file=file,
        )
    return model


def parse_selection(text: str, *, file: str | None = None) -> Selection:
    """Split ``provider/model`` on the first ``/`` and validate both halves; the provider is
    matched ignoring case, the model ID is kept exactly as typed."""
    if not isinstance(text, str) or "/" not in text:
        raise InvalidModelIdError(
            f"selection {text!r} is not of the form provider/model",
            fix="write it as provider/model, e.g. anthropic/claude-sonnet-4-5-20250929",
            field="selection",
            file=file,
        )
    provider, model = text.split("/", 1)
    return Selection(get_provider(provider).id, validate_model_id(model, file=file))
