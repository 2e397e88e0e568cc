"""Routing policy and its precedence (SPEC §5.2), written in exactly one place.

per-invocation override (--prefer, request field)
  > local preferences  preferDextoCredits: true|false
    > agent file       llm.routing.prefer
      > default        dexto
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dexto.errors import ConfigError

__all__ = ["Prefer", "RoutingPolicy", "resolve_policy"]

Prefer = Literal["dexto", "direct"]


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    prefer: Prefer = "dexto"
    fallback_on_insufficient_credits: bool = True
    source: str = "default"  # which layer decided ``prefer``


def resolve_policy(
    *,
    agent_prefer: str | None = None,
    agent_fallback: bool = True,
    prefer_dexto_credits: bool | None = None,
    override: str | None = None,
) -> RoutingPolicy:
    if override is not None:
        if override not in ("dexto", "direct"):
            raise ConfigError(
                f"prefer must be dexto or direct, not {override!r}",
                field="prefer",
                fix="pass --prefer dexto or --prefer direct",
            )
        return RoutingPolicy(override, agent_fallback, "override")  # type: ignore[arg-type]
    if prefer_dexto_credits is not None:
        prefer: Prefer = "dexto" if prefer_dexto_credits else "direct"
        return RoutingPolicy(prefer, agent_fallback, "preferences")
    if agent_prefer is not None:
        return RoutingPolicy(agent_prefer, agent_fallback, "agent")  # type: ignore[arg-type]
    return RoutingPolicy("dexto", agent_fallback, "default")
