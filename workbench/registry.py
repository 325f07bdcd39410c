"""One small generic registry: register(name, **info), get(name), names(pattern)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.checks import ConfigError


class UnknownNameError(ConfigError):
    """A name that is not in a registry; the message lists the accepted names."""


@dataclass
class Entry:
    name: str
    obj: Any
    info: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Names mapped to objects and their info, e.g. models or pruning methods."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str | None = None, **info: Any) -> Callable[[Any], Any]:
        """Decorator: register the object under `name` (default: its __name__) with its info."""

        def decorate(obj: Any) -> Any:
            key = name or obj.__name__
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = Entry(key, obj, dict(info))
            return obj

        return decorate

    def check(self, name: str) -> str:
        """Return `name` if known; otherwise raise a one-line error naming the known names."""
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), self._entries, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UnknownNameError(f"unknown {self.kind} {name!r}{hint}; known: {', '.join(self.names())}")
        return name

    def get(self, name: str) -> Any:
        return self._entries[self.check(name)].obj

    def info(self, name: str) -> dict[str, Any]:
        return dict(self._entries[self.check(name)].info)

    def names(self, pattern: str = "*", **where: Any) -> list[str]:
        """Sorted names matching a glob pattern and, optionally, info values (e.g. family='magnitude')."""
        return sorted(
            e.name
            for e in self._entries.values()
            if fnmatch.fnmatch(e.name, pattern) and all(_matches(e.info.get(k), v) for k, v in where.items())
        )

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self.names())


def _matches(value: Any, wanted: Any) -> bool:
    if isinstance(value, (tuple, list, set)):
        return wanted in value
    return value == wanted
