"""``Model``: run chat requests on the decided route, with the one 402 → own-key fallback.

The fallback (SPEC §7) happens at most once per request, only on the gateway's
``402 INSUFFICIENT_CREDITS``, only when the decision carries a fallback plan, and only while
nothing has been delivered to the caller. Every other error propagates unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import replace
from typing import Any

import httpx

from dexto.errors import DextoError, InsufficientCreditsError
from dexto.llm.execution import _http
from dexto.llm.execution._cloud import BedrockTransport, VertexAuth
from dexto.llm.execution._messages import Messages, normalize_messages, normalize_tools
from dexto.llm.execution._outcome import Outcome
from dexto.llm.execution._sse import Event
from dexto.llm.execution._target import HttpCall, Target
from dexto.llm.execution._types import ChatResult, Done, StreamEvent
from dexto.llm.execution.adapters import adapter_for
from dexto.llm.routing import RouteDecision

__all__ = ["Model"]

Prepared = tuple[list[dict[str, Any]], list[dict[str, Any]] | None, dict[str, Any]]
Headers = Mapping[str, str]


def _warned(result: ChatResult, call: HttpCall) -> ChatResult:
    """``result`` with the warnings the adapter attached to ``call`` (dropped parameters)."""
    if not call.warnings:
        return result
    return replace(result, warnings=(*result.warnings, *call.warnings))


class Model:
    """A selection bound to its routing decision. Create it with :func:`open_model`."""

    def __init__(
        self,
        decision: RouteDecision,
        primary: Target,
        fallback: Target | None,
        outcome: Outcome,
        *,
        fallback_error: DextoError | None = None,
        env: Mapping[str, str],
        defaults: Mapping[str, Any],
        timeout: float,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._decision = decision
        self._primary = primary
        self._fallback = fallback
        self._fallback_error = fallback_error  # raised on a 402 instead of falling back
        self._outcome = outcome
        self._defaults = dict(defaults)
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._transport = transport
        self._async_transport = async_transport
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._bedrock = BedrockTransport(env)
        self._vertex = VertexAuth(env)

    @property
    def decision(self) -> RouteDecision:
        """The routing decision this model runs on (the same one ``dexto route`` shows)."""
        return self._decision

    def __repr__(self) -> str:
        d = self._decision
        return f"<Model {d.provider}/{d.model} route={d.route}>"

    # --- sync -------------------------------------------------------------------------------
    def complete(
        self, messages: Messages, *, tools: Sequence[Mapping[str, Any]] | None = None, **params: Any
    ) -> ChatResult:
        """One chat completion. ``messages`` is a string or OpenAI-style message dicts."""
        prep = self._prepare(messages, tools, params)
        try:
            return self._complete_on(self._primary, prep, fell_back=False, balance=None)
        except InsufficientCreditsError as err:
            target = self._switch(err)
            return self._complete_on(target, prep, fell_back=True, balance=err.balance_usd)

    def stream(
        self, messages: Messages, *, tools: Sequence[Mapping[str, Any]] | None = None, **params: Any
    ) -> Iterator[StreamEvent]:
        """Yield ``TextDelta``/``ToolCallDelta`` as they arrive, then one ``Done(result)``."""
        prep = self._prepare(messages, tools, params)
        target, fell_back, balance = self._primary, False, None
        while True:
            delivered = False
            try:
                call, parser = self._build(target, prep, stream=True)
                with self._open(target, call) as (headers, events):
                    for event, data in events:
                        for delta in parser.feed(event, data):
                            delivered = True
                            yield delta
                    reply = parser.reply()
                result = self._outcome.result(
                    target, reply, headers, fell_back=fell_back, balance=balance, stream=True
                )
                yield Done(_warned(result, call))
                return
            except InsufficientCreditsError as err:
                if delivered or fell_back:
                    raise self._outcome.exhausted(err, after_output=delivered) from None
                target, fell_back, balance = self._switch(err), True, err.balance_usd

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- async ------------------------------------------------------------------------------
    async def acomplete(
        self, messages: Messages, *, tools: Sequence[Mapping[str, Any]] | None = None, **params: Any
    ) -> ChatResult:
        prep = self._prepare(messages, tools, params)
        try:
            return await self._acomplete_on(self._primary, prep, fell_back=False, balance=None)
        except InsufficientCreditsError as err:
            target = self._switch(err)
            return await self._acomplete_on(target, prep, fell_back=True, balance=err.balance_usd)

    async def astream(
        self, messages: Messages, *, tools: Sequence[Mapping[str, Any]] | None = None, **params: Any
    ) -> AsyncIterator[StreamEvent]:
        prep = self._prepare(messages, tools, params)
        target, fell_back, balance = self._primary, False, None
        while True:
            delivered = False
            try:
                call, parser = self._build(target, prep, stream=True)
                async with self._aopen(target, call) as (headers, events):
                    async for event, data in events:
                        for delta in parser.feed(event, data):
                            delivered = True
                            yield delta
                    reply = parser.reply()
                result = self._outcome.result(
                    target, reply, headers, fell_back=fell_back, balance=balance, stream=True
                )
                yield Done(_warned(result, call))
                return
            except InsufficientCreditsError as err:
                if delivered or fell_back:
                    raise self._outcome.exhausted(err, after_output=delivered) from None
                target, fell_back, balance = self._switch(err), True, err.balance_usd

    async def aclose(self) -> None:
        self.close()
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None

    async def __aenter__(self) -> Model:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- internals --------------------------------------------------------------------------
    def _prepare(
        self, messages: Messages, tools: Sequence[Mapping[str, Any]] | None, params: dict[str, Any]
    ) -> Prepared:
        return (normalize_messages(messages), normalize_tools(tools), {**self._defaults, **params})

    def _switch(self, err: InsufficientCreditsError) -> Target:
        """The fallback target for a 402, or the exhausted-credits error to raise."""
        if self._fallback is None:
            if self._fallback_error is not None:
                raise self._fallback_error from None
            raise self._outcome.exhausted(err) from None
        return self._fallback

    def _build(self, target: Target, prep: Prepared, *, stream: bool) -> tuple[HttpCall, Any]:
        if target.wire == "vertex":
            target = self._vertex.prepare(target)
        adapter = adapter_for(target.wire)
        call = adapter.build(target, prep[0], prep[1], dict(prep[2]), stream)
        return call, adapter.stream_parser(target)

    def _complete_on(
        self, target: Target, prep: Prepared, *, fell_back: bool, balance: str | None
    ) -> ChatResult:
        call, _ = self._build(target, prep, stream=False)
        if target.wire == "bedrock":
            doc, headers = self._bedrock.post(target, call)
        else:
            doc, headers = _http.post_json(self._sync_client(), target, call)
        reply = adapter_for(target.wire).parse(target, doc)
        result = self._outcome.result(target, reply, headers, fell_back=fell_back, balance=balance)
        return _warned(result, call)

    async def _acomplete_on(
        self, target: Target, prep: Prepared, *, fell_back: bool, balance: str | None
    ) -> ChatResult:
        if target.wire == "bedrock":  # boto3 is synchronous: run it off the event loop
            import anyio.to_thread

            return await anyio.to_thread.run_sync(
                lambda: self._complete_on(target, prep, fell_back=fell_back, balance=balance)
            )
        call, _ = self._build(target, prep, stream=False)
        doc, headers = await _http.apost_json(self._async_client(), target, call)
        reply = adapter_for(target.wire).parse(target, doc)
        result = self._outcome.result(target, reply, headers, fell_back=fell_back, balance=balance)
        return _warned(result, call)

    def _open(
        self, target: Target, call: HttpCall
    ) -> AbstractContextManager[tuple[Headers, Iterator[Event]]]:
        if target.wire == "bedrock":
            return self._bedrock.open_stream(target, call)
        return _http.open_stream(self._sync_client(), target, call)

    def _aopen(
        self, target: Target, call: HttpCall
    ) -> AbstractAsyncContextManager[tuple[Headers, AsyncIterator[Event]]]:
        if target.wire == "bedrock":
            from dexto.llm.execution._threaded import threaded_stream

            return threaded_stream(self._bedrock.open_stream(target, call))
        return _http.aopen_stream(self._async_client(), target, call)

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout, transport=self._transport)
        return self._client

    def _async_client(self) -> httpx.AsyncClient:
        if self._aclient is None:
            self._aclient = httpx.AsyncClient(
                timeout=self._timeout, transport=self._async_transport
            )
        return self._aclient
