"""Pruning schedules: Zhu & Gupta's cubic sparsity, its event steps, iterative level targets."""

from __future__ import annotations

from workbench import checks
from workbench.targets import ChannelRatio, FlopsReduction, ParamReduction, Sparsity, Target
from workbench.training import Callback


def cubic_sparsity(step: int, steps: int, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta (2017): s_k = s_f + (s_i - s_f) * (1 - k / n)^3 for pruning step k of n."""
    if not 0 <= step <= steps:
        raise ValueError(f"step must be in [0, {steps}], got {step}")
    return final + (initial - final) * (1 - step / steps) ** 3


def pruning_events(total_steps: int, pruning_steps: int, fraction: float = 0.5) -> list[int]:
    """Optimiser steps after which the mask is tightened: evenly over the first `fraction` of training."""
    last = max(1, int(total_steps * fraction))
    return [max(1, round(last * k / pruning_steps)) for k in range(1, pruning_steps + 1)]


def level_target(target: Target, level: int, levels: int) -> Target:
    """The target of iterative level `level` of `levels`: equal steps in log size, reaching `target` at the last.

    Fractions removed (sparsity, channel ratio) follow 1 - (1 - s)^(l/L) (a fixed share of what is left goes each
    level, as in iterative magnitude pruning); reduction factors follow f^(l/L).
    """
    if level == levels:
        return target
    share = level / levels
    if isinstance(target, (Sparsity, ChannelRatio)):
        return type(target)(1 - (1 - target.value) ** share)
    if isinstance(target, (FlopsReduction, ParamReduction)):
        return type(target)(target.value**share)
    raise checks.ConfigError(f"a {target.kind} target cannot be split into iterative levels; use a one-shot schedule")


class GradualPruning(Callback):
    """Zhu & Gupta's gradual pruning during training: at each event step the sparsity rises on the cubic schedule.

    The method's own `prune` is called with `Sparsity(cubic_sparsity(k, n, final))` at the k-th of n events.
    """

    def __init__(self, prune_to, final: float, events: list[int]):
        self.prune_to, self.final, self.events = prune_to, final, events

    def after_step(self, step: int, model) -> None:
        done = sum(e <= step + 1 for e in self.events)  # events count optimizer steps taken (step is 0-based)
        if step + 1 in self.events:
            self.prune_to(model, Sparsity(cubic_sparsity(done, len(self.events), self.final)))
