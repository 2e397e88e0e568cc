"""Turning a parsed reply into the public ``ChatResult``: route taken, credits, warnings; and
the error raised when credits are exhausted with nothing to fall back to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from dexto.errors import InsufficientCreditsError
from dexto.llm.execution._target import Target
from dexto.llm.execution._types import ChatResult, Reply, RouteTaken, Usage
from dexto.llm.providers import get_provider
from dexto.llm.routing import RouteDecision, RoutingContext, direct_key_hint, resolve_route

__all__ = ["Outcome", "after_output_fix", "credential_words", "exhausted_fix_for", "usd_text"]


def credential_words(source: str) -> str:
    """ "env:ANTHROPIC_API_KEY" → "ANTHROPIC_API_KEY"; "auth-store:anthropic" → "stored
    anthropic key" (a name, never a secret)."""
    if source.startswith("env:"):
        return source[4:]
    if source.startswith("auth-store:"):
        return f"stored {source[len('auth-store:') :]} key"
    return source


def _usd(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _after_stream(credits: str | None, cost: str | None) -> str | None:
    """A stream's headers carry the balance *before* the request; subtract the cost reported
    in its final usage chunk (rounded up to the micro-dollar, as the gateway charges)."""
    before, spent = _usd(credits), _usd(cost)
    if before is None or spent is None:
        return credits
    return f"{before - spent.quantize(Decimal('0.000001'), rounding=ROUND_CEILING):.6f}"


def usd_text(text: str | None) -> str:
    """ "0.050000" → "0.05", "0.049676" → "0.049676" (at least cents, no trailing zeros)."""
    value = _usd(text)
    if value is None:
        return str(text)
    out = f"{value:f}"
    if "." in out:
        whole, frac = out.split(".")
        out = f"{whole}.{frac.rstrip('0').ljust(2, '0')}"
    return out


@dataclass(frozen=True, slots=True)
class Outcome:
    """Per-Model constants used to build results and the exhausted-credits error."""

    decision: RouteDecision
    low_credits_usd: float
    exhausted_fix: str
    fallback_warning: str = ""  # shown with every gateway-paid result when not empty
    after_output_fix: str = ""  # the fix for a 402 after output was delivered, when not empty

    def result(
        self,
        target: Target,
        reply: Reply,
        headers: Mapping[str, str],
        *,
        fell_back: bool,
        balance: str | None,
        stream: bool = False,
    ) -> ChatResult:
        credits = headers.get("x-dexto-credits-remaining") if target.is_gateway else balance
        cost = headers.get("x-dexto-cost") if target.is_gateway else None
        if target.is_gateway and stream:
            credits = _after_stream(credits, reply.cost_usd)
        route = RouteTaken(
            "dexto" if target.is_gateway else "direct",
            target.provider,
            target.model,
            fell_back,
            self._reason(target, fell_back, balance),
        )
        usage = Usage(reply.prompt_tokens, reply.completion_tokens, cost or reply.cost_usd)
        return ChatResult(
            reply.text,
            tuple(reply.tool_calls),
            usage,
            route,
            credits,
            self._warnings(credits, gateway=target.is_gateway),
            reply.finish_reason,
        )

    def _reason(self, target: Target, fell_back: bool, balance: str | None) -> str:
        if not fell_back:
            return self.decision.reason
        bal = f" (balance ${usd_text(balance)})" if balance is not None else ""
        return (
            f"Dexto credits exhausted{bal}; continued with your "
            f"{credential_words(target.credential_source)}, directly to {target.label} as "
            f"{target.model}."
        )

    def _warnings(self, credits: str | None, *, gateway: bool) -> tuple[str, ...]:
        out = (self.fallback_warning,) if gateway and self.fallback_warning else ()
        value = _usd(credits)
        threshold = Decimal(str(self.low_credits_usd))
        if value is None or value >= threshold:
            return out
        return (
            *out,
            f"Dexto credits are low: ${usd_text(credits)} left (below ${threshold:.2f}); "
            f"{self.exhausted_fix}.",
        )

    def exhausted(
        self, err: InsufficientCreditsError, *, after_output: bool = False
    ) -> InsufficientCreditsError:
        """The error for a 402 that cannot (or may no longer) fall back: balance and fixes."""
        bal = err.balance_usd
        message = (
            err.message
            if "Balance" in err.message
            else (
                "Insufficient Dexto credits" + (f". Balance: ${usd_text(bal)}" if bal else "") + "."
            )
        )
        fix = (
            self.after_output_fix if after_output and self.after_output_fix else self.exhausted_fix
        )
        return InsufficientCreditsError(message, fix=fix, balance_usd=bal)


def exhausted_fix_for(decision: RouteDecision, ctx: RoutingContext) -> str:
    """The recovery hint when credits run out, from the data ``decide`` used: top up, or the
    model's own direct credential (the fallback's, the one the policy keeps unused, or the
    variable it would be read from), and an openrouter selection's native alternative."""
    if decision.fallback is not None:
        return (
            f"top up your Dexto credits; requests continue with your "
            f"{credential_words(decision.fallback.credential_source)} meanwhile"
        )
    p = get_provider(decision.provider)
    own = resolve_route(p, decision.model, ctx).direct_source
    if own is not None:
        fix = (
            f"top up your Dexto credits, or set llm.routing.fallbackOnInsufficientCredits: "
            f"true to continue with your {credential_words(own)}"
        )
    else:
        hint = direct_key_hint(p.id, decision.model, ctx)
        fix = f"top up your Dexto credits; or, to continue with your own {p.name} key, {hint}"
    for alt in decision.alternatives[:1]:
        fix += (
            f"; or switch to `{alt.provider}/{alt.model}` "
            f"(your {credential_words(alt.credential_source)})"
        )
    return fix


def after_output_fix(decision: RouteDecision) -> str:
    """The hint for a 402 that arrives after output was delivered: this request cannot switch,
    the next one falls back (empty when the decision has no fallback)."""
    if decision.fallback is None:
        return ""
    return (
        "top up your Dexto credits, or retry: the next request continues with your "
        f"{credential_words(decision.fallback.credential_source)}"
    )
