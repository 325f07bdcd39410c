"""Alternating rounds over prepared models (any runtime): each round times every model once, medians are kept, so
drift on a shared CPU moves all of them together and the ratios hold."""

from __future__ import annotations

import statistics

import torch

from workbench import stopwatch
from workbench.deploy.runtimes import Prepared, as_layout


def median_ms(fn, x, threads: int, min_run_time: float) -> float:
    """Median milliseconds of `fn(x)` (`workbench.stopwatch`: timeit over blocks, median kept)."""
    return stopwatch.median_ms(fn, x, threads=threads, min_run_time=min_run_time)


def ms_per_call(prepared: Prepared, x: torch.Tensor, threads: int, min_run_time: float) -> float:
    """Median milliseconds of `prepared.run(x)`, `x` in the layout the prepared model wants."""
    return median_ms(prepared.run, as_layout(x, prepared.channels_last), threads, min_run_time)


def alternating(prepared: dict[str, Prepared], x: torch.Tensor, threads: int = 1, rounds: int = 5,
                min_run_time: float = 0.2) -> dict[str, float]:  # fmt: skip
    """{name: median ms} of every prepared model on `x`, timed in `rounds` alternating rounds."""
    times = {name: [] for name in prepared}
    for _ in range(rounds):
        for name, p in prepared.items():
            times[name].append(ms_per_call(p, x, threads, min_run_time))
    return {name: statistics.median(t) for name, t in times.items()}
