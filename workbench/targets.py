"""Typed pruning targets: what a method prunes *to*. Frozen, validated on construction, no heavy imports.

Every target measures against a reference model (the dense one, unless said otherwise):

- `Sparsity(0.9)`: 90 % of the reference's prunable (conv/linear) weights are zero or gone.
- `FlopsReduction(2.0)`: the model executes half the reference's FLOPs.
- `ParamReduction(2.0)`: the model stores half the reference's parameters.
- `ChannelRatio(0.3)`: 30 % of the channels of every prunable group are removed (structured methods).
- `LatencyBudget(5.0, batch_size=1, threads=1)`: forward latency at most 5 ms at that batch size and thread count.
- `LatencyFraction(0.75, batch_size=64)`: forward latency at most 0.75 x the dense model's, timed alike.
- `GateDensity(0.5)`: dynamic execution computes half the channels of every gated layer, per input.

New kinds (clusters, bits, a gate budget) are new dataclasses registered with `@target_kind`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from workbench import checks

TARGET_KINDS: dict[str, type[Target]] = {}


def target_kind(cls: type[Target]) -> type[Target]:
    """Class decorator: make a target kind known by its `kind` name (for flat parameters and records)."""
    TARGET_KINDS[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class Target:
    """Base class; a subclass names its `kind` and holds its value in `value`."""

    kind: ClassVar[str] = ""
    value: float

    def as_dict(self) -> dict[str, Any]:
        """The target as plain values: {"kind": ..., "value": ..., and any extra field}."""
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def label(self) -> str:
        return f"{self.kind}={self.value:g}"


@target_kind
@dataclass(frozen=True)
class Sparsity(Target):
    """Fraction of the reference model's prunable weights that are zero or gone, in [0, 1)."""

    kind: ClassVar[str] = "sparsity"

    def __post_init__(self):
        checks.fraction("sparsity", self.value)


@target_kind
@dataclass(frozen=True)
class FlopsReduction(Target):
    """Reference FLOPs / pruned FLOPs, >= 1 (2.0 halves the FLOPs)."""

    kind: ClassVar[str] = "flops_reduction"

    def __post_init__(self):
        checks.number("flops_reduction", self.value, 1.0)


@target_kind
@dataclass(frozen=True)
class ParamReduction(Target):
    """Reference parameters / pruned parameters, >= 1."""

    kind: ClassVar[str] = "param_reduction"

    def __post_init__(self):
        checks.number("param_reduction", self.value, 1.0)


@target_kind
@dataclass(frozen=True)
class ChannelRatio(Target):
    """Fraction of the channels removed from every prunable group, in [0, 1)."""

    kind: ClassVar[str] = "channel_ratio"

    def __post_init__(self):
        checks.fraction("channel_ratio", self.value)


@target_kind
@dataclass(frozen=True)
class LatencyBudget(Target):
    """Forward latency at most `value` milliseconds at `batch_size` and `threads` (measured on this machine)."""

    kind: ClassVar[str] = "latency_ms"
    batch_size: int = 1
    threads: int = 1

    def __post_init__(self):
        checks.number("latency budget (ms)", self.value, 0.0)
        if self.value == 0:
            raise checks.ConfigError("latency budget (ms) must be > 0, got 0")
        checks.integer("latency batch_size", self.batch_size, 1)
        checks.integer("latency threads", self.threads, 1)

    def label(self) -> str:
        return f"latency<={self.value:g}ms@b{self.batch_size}x{self.threads}t"

    def limit_ms(self, dense_ms: float) -> float:
        """The budget in ms, given the dense model's latency in the same setting."""
        return self.value


@target_kind
@dataclass(frozen=True)
class LatencyFraction(LatencyBudget):
    """Forward latency at most `value` x the dense model's, both timed on this machine at `batch_size` and `threads`
    (a budget that travels between machines and holds under load, which moves both timings alike)."""

    kind: ClassVar[str] = "latency_fraction"

    def __post_init__(self):
        checks.number("latency fraction", self.value, 0.0, 1.0, open_low=True, open_high=True)
        checks.integer("latency batch_size", self.batch_size, 1)
        checks.integer("latency threads", self.threads, 1)

    def label(self) -> str:
        return f"latency<={self.value:g}xdense@b{self.batch_size}x{self.threads}t"

    def limit_ms(self, dense_ms: float) -> float:
        return self.value * dense_ms


@target_kind
@dataclass(frozen=True)
class GateDensity(Target):
    """Fraction of each gated layer's output channels computed per input, in (0, 1] (FBS's density d)."""

    kind: ClassVar[str] = "gate_density"

    def __post_init__(self):
        checks.number("gate density", self.value, 0.0, 1.0, open_low=True)


def make_target(kind: str, value: float, **extra: Any) -> Target:
    """The target of `kind` (a name of TARGET_KINDS) with `value`; a one-line error for an unknown kind."""
    checks.choice("target kind", kind, sorted(TARGET_KINDS))
    return TARGET_KINDS[kind](value, **extra)


def from_dict(data: dict[str, Any]) -> Target:
    """Inverse of Target.as_dict."""
    data = dict(data)
    return make_target(data.pop("kind"), data.pop("value"), **data)
