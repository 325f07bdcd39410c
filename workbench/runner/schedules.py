"""Sparsity schedules: plain functions of the step."""

from __future__ import annotations


def cubic_sparsity(step: int, steps: int, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta (2017): s_k = s_f + (s_i - s_f) * (1 - k / n)^3 for pruning step k of n."""
    if not 0 <= step <= steps:
        raise ValueError(f"step must be in [0, {steps}], got {step}")
    return final + (initial - final) * (1 - step / steps) ** 3


def pruning_events(total_steps: int, pruning_steps: int, fraction: float = 0.5) -> list[int]:
    """Optimiser steps after which the mask is tightened: evenly over the first `fraction` of training."""
    last = max(1, int(total_steps * fraction))
    return [max(1, round(last * k / pruning_steps)) for k in range(1, pruning_steps + 1)]
