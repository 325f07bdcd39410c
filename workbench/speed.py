"""Honest speed: dense and pruned latency measured in one run, alternating, as ratios next to FLOPs.

Timings on a shared CPU drift, so the two models are timed in alternating rounds and the median of each is
kept; the efficiency is the measured speedup divided by the FLOPs speedup (1.0 = FLOPs predicted it).
"""

from __future__ import annotations

import contextlib
import copy
import statistics

import torch
import torch.nn as nn

from workbench import metrics


def inference_ready(model: nn.Module, fuse_bn: bool = True, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy for timing: masks folded into the weights (zeros stay dense, as PyTorch runs them),
    batch norm folded into the convolutions (torch.fx) when possible, and channels-last memory format, which
    oneDNN's CPU convolutions prefer (measured: ResNet-56 at batch 64 runs about 1.5x faster than NCHW)."""
    from workbench.pruning.masks import make_permanent

    ready = make_permanent(copy.deepcopy(model)).eval()
    for p in ready.parameters():
        p.requires_grad_(False)
    if fuse_bn:
        from torch.fx.experimental.optimization import fuse

        with contextlib.suppress(Exception):  # a model torch.fx cannot trace is timed unfused
            ready = fuse(ready)
    if channels_last:
        ready = ready.to(memory_format=torch.channels_last)
    return ready


def compare_latency(
    dense: nn.Module,
    pruned: nn.Module,
    input_shape,
    batch_size: int = 64,
    threads: int = 1,
    rounds: int = 5,
    min_run_time: float = 0.2,
    **ready,
) -> dict[str, float]:
    """Median latency (ms) of dense and pruned over alternating rounds, their ratio and the settings used.

    `ready` takes inference_ready's options (fuse_bn, channels_last; both on when not given)."""
    settings = {"fuse_bn": ready.get("fuse_bn", True), "channels_last": ready.get("channels_last", True)}
    a, b = inference_ready(dense, **settings), inference_ready(pruned, **settings)
    ld, lp = alternating_ms(a, b, input_shape, batch_size, threads, rounds, min_run_time, settings["channels_last"])
    return {
        "latency_ms_dense": ld,
        "latency_ms_pruned": lp,
        "speedup": ld / lp,
        "batch_size": batch_size,
        "threads": threads,
        "rounds": rounds,
        **settings,
    }


def alternating_ms(a: nn.Module, b: nn.Module, input_shape, batch_size: int = 64, threads: int = 1, rounds: int = 5,
                   min_run_time: float = 0.2, channels_last: bool = True) -> tuple[float, float]:  # fmt: skip
    """Median latency (ms) of two models ready for timing, timed in `rounds` alternating rounds."""
    a_ms, b_ms = [], []
    for _ in range(rounds):
        a_ms.append(metrics.latency_ms(a, input_shape, batch_size, threads, min_run_time, channels_last)["latency_ms"])
        b_ms.append(metrics.latency_ms(b, input_shape, batch_size, threads, min_run_time, channels_last)["latency_ms"])
    return statistics.median(a_ms), statistics.median(b_ms)
