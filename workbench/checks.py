"""One-line validation helpers shared by configurations, hyperparameters and targets (no heavy imports)."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A bad parameter; the message names the value and the accepted ones."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def choice(what: str, value: Any, known) -> Any:
    """`value` if it is in `known`, else a ConfigError naming the accepted values."""
    known = list(known)
    if value not in known:
        raise ConfigError(f"unknown {what} {value!r}; known: {', '.join(map(str, known))}")
    return value


def integer(what: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """`value` if it is an int in [low, high] (bounds optional), else a ConfigError with the accepted range."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{what} must be an integer {_range(low, high, ']')}, got {value!r}")
    return value


def number(
    what: str, value: Any, low: float | None = None, high: float | None = None, open_high=False, open_low=False
) -> float:
    """`value` if it is a number in [low, high] (open at either end on request), else a ConfigError."""
    ok = _is_number(value)
    if ok and low is not None and (value <= low if open_low else value < low):
        ok = False
    if ok and high is not None and (value >= high if open_high else value > high):
        ok = False
    if not ok:
        span = _range(low, high, ")" if open_high else "]", "(" if open_low else "[")
        raise ConfigError(f"{what} must be a number {span}, got {value!r}")
    return value


def fraction(what: str, value: Any) -> float:
    """A number in [0, 1)."""
    return number(what, value, 0.0, 1.0, open_high=True)


def _range(low, high, close: str, begin: str = "[") -> str:
    if low is not None and high is not None:
        return f"in {begin}{low:g}, {high:g}{close}"
    if low is not None:
        return f"> {low:g}" if begin == "(" else f">= {low:g}"
    if high is not None:
        return f"<= {high:g}"
    return ""
