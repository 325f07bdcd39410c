"""Honest latency of dynamic execution at batch 1: dense, masked (nothing skipped), skipping, and optionally a
static channel-pruned model, each timed over the same inputs one at a time, in alternating rounds (medians kept).

The efficiency is the measured speedup over dense divided by the FLOPs speedup the gates claim (dense FLOPs / mean
executed FLOPs of the timed inputs; a static model's own FLOPs). All models run as plain eval-mode PyTorch (batch
norm not folded, NCHW), so no variant gets an optimisation the others lack.
"""

from __future__ import annotations

import copy
import statistics

import torch
import torch.nn as nn

from workbench import metrics, stopwatch
from workbench.gating.cost import costs, per_input_flops
from workbench.gating.sites import set_execution


def _run_all(model: nn.Module, inputs: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for x in inputs:
            model(x)


def _ms_per_input(model: nn.Module, inputs: list[torch.Tensor], threads: int, min_run_time: float) -> float:
    return stopwatch.median_ms(_run_all, model, inputs, threads=threads, min_run_time=min_run_time) / len(inputs)


def compare(
    dense: nn.Module,
    gated: nn.Module,
    inputs: torch.Tensor,
    static: nn.Module | None = None,
    threads: int = 1,
    rounds: int = 5,
    min_run_time: float = 0.2,
) -> list[dict]:
    """One row per execution (dense, masked, skip[, static]): ms per input, speedup, FLOPs speedup, efficiency."""
    shape = tuple(inputs.shape[1:])
    singles = [x.unsqueeze(0) for x in inputs]
    dense_flops = metrics.flop_count(dense, shape)["flops"]
    mean_gated = float(per_input_flops(gated, inputs, costs(gated, shape)).mean())
    variants = {
        "dense": (copy.deepcopy(dense).eval(), dense_flops),
        "masked": (set_execution(copy.deepcopy(gated).eval(), "masked"), mean_gated),
        "skip": (set_execution(copy.deepcopy(gated).eval(), "skip"), mean_gated),
    }
    if static is not None:
        variants["static"] = (copy.deepcopy(static).eval(), metrics.flop_count(static, shape)["flops"])
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (model, _) in variants.items():
            times[name].append(_ms_per_input(model, singles, threads, min_run_time))
    dense_ms = statistics.median(times["dense"])
    rows = []
    for name, (_, flops) in variants.items():
        ms = statistics.median(times[name])
        speedup, flops_speedup = dense_ms / ms, dense_flops / flops
        rows.append({
            "execution": name, "ms_per_input": ms, "speedup": speedup, "flops": flops,
            "flops_speedup": flops_speedup, "efficiency": speedup / flops_speedup,
            "batch_size": 1, "threads": threads, "inputs": len(singles), "rounds": rounds,
        })  # fmt: skip
    return rows
