"""Agent files: the ``llm`` section says *what* model, never how it is paid (SPEC §5.1)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dexto.config._yaml import config_error_from_validation, read_yaml
from dexto.config.custom_models import CustomModel, parse_custom_models
from dexto.errors import ConfigError
from dexto.llm.providers import get_provider
from dexto.llm.selection import ProviderId, Selection, validate_model_id

__all__ = ["AgentConfig", "LLMConfig", "RoutingConfig", "load_agent_file", "validate_llm_section"]

FIX = (
    "fix the llm section of the agent file; for an installed agent `dexto agents diff ID` shows"
    " your changes to the bundled copy"
)
YAML_FIX = (
    "correct the YAML at the line shown; for an installed agent `dexto agents install ID"
    " --force` restores the bundled copy (keeping a backup of yours)"
)
_REF = re.compile(r"^\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)$")


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prefer: Literal["dexto", "direct"] | None = None
    fallbackOnInsufficientCredits: bool = True


class LLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderId
    model: str
    apiKey: str | None = None  # only a $VAR reference, never a raw key
    baseURL: str | None = None
    maxInputTokens: int | None = Field(default=None, gt=0)
    maxOutputTokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    reasoningEffort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    routing: RoutingConfig = RoutingConfig()
    customModels: list[dict[str, Any]] = []

    @field_validator("apiKey")
    @classmethod
    def _api_key_is_reference(cls, v: str | None) -> str | None:
        if v is not None and not _REF.match(v.strip()):
            raise ValueError(
                "apiKey must be an environment reference like $ANTHROPIC_API_KEY; "
                "secrets are never stored in YAML"
            )
        return v

    @property
    def selection(self) -> Selection:
        return Selection(self.provider, self.model)


class AgentConfig(BaseModel):
    """The parts of an agent file dexto reads; other top-level keys are left to the agent."""

    model_config = ConfigDict(extra="allow", frozen=True)

    llm: LLMConfig
    path: str | None = None
    custom_models: list[CustomModel] = []


def validate_llm_section(
    raw: Any, *, file: str, doc: Any = None, prefix: tuple[str, ...] = ("llm",)
) -> tuple[LLMConfig, list[CustomModel]]:
    """Validate an ``llm`` mapping: shape, provider (``dexto`` refused), model ID, custom models."""
    if not isinstance(raw, dict):
        raise ConfigError(
            "the llm section must be a mapping with provider and model",
            file=file,
            field=".".join(prefix),
            fix=FIX,
        )
    provider = raw.get("provider")
    if isinstance(provider, str):
        try:
            get_provider(provider)
        except ConfigError as exc:
            raise type(exc)(
                exc.message.split(": ", 1)[-1],
                fix=exc.fix,
                file=file,
                field=".".join((*prefix, "provider")),
                line=_line(doc, (*prefix, "provider")),
            ) from None
    try:
        llm = LLMConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise config_error_from_validation(exc, doc, file=file, fix=FIX, prefix=prefix) from None
    validate_model_id(llm.model, field=".".join((*prefix, "model")), file=file)
    customs = parse_custom_models(
        llm.customModels, file=file, field_prefix=".".join((*prefix, "customModels")), doc=doc
    )
    return llm, customs


def _line(doc: Any, loc: tuple[str, ...]) -> int | None:
    from dexto.config._yaml import line_of

    return line_of(doc, loc) if doc is not None else None


def load_agent_file(path: Path) -> AgentConfig:
    """Read and validate an agent YAML file; every error names the file, line and field."""
    doc = read_yaml(path, fix=YAML_FIX)
    if not isinstance(doc, dict) or "llm" not in doc:
        raise ConfigError(
            "no llm section",
            file=str(path),
            field="llm",
            fix="add `llm: {provider: anthropic, model: claude-sonnet-4-5-20250929}`",
        )
    llm, customs = validate_llm_section(doc["llm"], file=str(path), doc=doc)
    return AgentConfig(llm=llm, path=str(path), custom_models=customs)
