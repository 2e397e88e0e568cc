"""A string wrapper whose repr and str never show the secret."""

from __future__ import annotations

__all__ = ["Secret", "is_sendable"]


class Secret:
    """Holds a credential; ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def is_sendable(value: str) -> bool:
    """Whether ``value`` can be sent as a key in an HTTP header: printable ASCII, no spaces."""
    return all("!" <= c <= "~" for c in value)
