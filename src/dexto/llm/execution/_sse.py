"""A minimal Server-Sent Events decoder (line-fed, so it serves sync and async readers)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

__all__ = ["SSEDecoder", "aiter_sse", "iter_sse"]

Event = tuple[str, str]  # (event name, data)


class SSEDecoder:
    __slots__ = ("_event", "_data")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def line(self, line: str) -> Event | None:
        """Feed one line (without its newline); return an event when a blank line ends one."""
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def flush(self) -> Event | None:
        if not self._data:
            self._event = ""
            return None
        event = (self._event or "message", "\n".join(self._data))
        self._event, self._data = "", []
        return event


def iter_sse(lines: Iterable[str]) -> Iterator[Event]:
    """Events until the stream ends or sends ``data: [DONE]``."""
    dec = SSEDecoder()
    for line in lines:
        ev = dec.line(line.rstrip("\r"))
        if ev is not None:
            if ev[1].strip() == "[DONE]":
                return
            yield ev
    ev = dec.flush()
    if ev is not None and ev[1].strip() != "[DONE]":
        yield ev


async def aiter_sse(lines: AsyncIterable[str]) -> AsyncIterator[Event]:
    dec = SSEDecoder()
    async for line in lines:
        ev = dec.line(line.rstrip("\r"))
        if ev is not None:
            if ev[1].strip() == "[DONE]":
                return
            yield ev
    ev = dec.flush()
    if ev is not None and ev[1].strip() != "[DONE]":
        yield ev
