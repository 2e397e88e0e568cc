"""Assemble a ``RoutingContext`` from the local state, in one place.

Reads (never writes): the environment, ``auth.json``, ``preferences.yml``,
``models/custom-models.json``, the agent file's ``llm`` section, and lazily the marketplace cache.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from dexto.auth.credentials import CredentialSnapshot
from dexto.auth.store import read_auth_store
from dexto.config.agent import AgentConfig
from dexto.config.custom_models import CustomModel, load_custom_models, merge_custom_models
from dexto.config.paths import DextoPaths
from dexto.config.preferences import Preferences, load_preferences
from dexto.llm.marketplace import MarketplaceCatalog, load_marketplace
from dexto.llm.policy import resolve_policy
from dexto.llm.registry import load_registry
from dexto.llm.routing import RoutingContext

__all__ = ["LocalState", "build_context"]


@dataclass(frozen=True)
class LocalState:
    """What the context was built from (for surfaces that also list or edit it)."""

    paths: DextoPaths
    preferences: Preferences
    custom_models: list[CustomModel]


def build_context(
    *,
    env: Mapping[str, str] | None = None,
    agent: AgentConfig | None = None,
    prefer: str | None = None,
    paths: DextoPaths | None = None,
    marketplace: MarketplaceCatalog | None = None,
) -> tuple[RoutingContext, LocalState]:
    env = dict(os.environ) if env is None else env
    paths = paths or DextoPaths.from_env(env)
    prefs = load_preferences(paths.preferences)
    store = read_auth_store(paths.auth)
    overrides: dict[str, str] = {}
    if agent is not None and agent.llm.apiKey:
        overrides[agent.llm.provider] = agent.llm.apiKey
    policy = resolve_policy(
        agent_prefer=agent.llm.routing.prefer if agent else None,
        agent_fallback=agent.llm.routing.fallbackOnInsufficientCredits if agent else True,
        prefer_dexto_credits=prefs.preferDextoCredits,
        override=prefer,
    )
    customs = merge_custom_models(
        load_custom_models(paths.custom_models), agent.custom_models if agent else ()
    )
    ctx = RoutingContext(
        credentials=CredentialSnapshot.build(env, store, overrides),
        policy=policy,
        registry=load_registry(),
        env=env,
        custom_models={(m.provider, m.name): m for m in customs},
        marketplace_loader=(lambda: marketplace)
        if marketplace is not None
        else (lambda: load_marketplace(paths)),
        agent_base_urls={agent.llm.provider: agent.llm.baseURL}
        if agent is not None and agent.llm.baseURL
        else {},
    )
    return ctx, LocalState(paths, prefs, customs)
