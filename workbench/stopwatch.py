"""One timer for the workbench's latencies: the standard library's `timeit` over blocks sized once, median kept.

Written here rather than taken from torch.utils.benchmark: `Timer.blocked_autorange` sizes its blocks by running
ten times more calls until the timer's overhead is under 1e-4 of a block, and for a forward pass under a
millisecond the last of those trial blocks alone runs several times `min_run_time` (measured on notebook 02's
sweep: 40% of its timing went to sizing blocks); `Timer.timeit` warms up before every block, tripling the cost of
one-call blocks. Here one warm-up call and one timed call size the blocks, which then run until `min_run_time` is
spent and at least three are done; garbage collection is off while a block runs (timeit's default).
"""

from __future__ import annotations

import math
import statistics
import timeit

MIN_BLOCKS = 3


def median_ms(fn, *args, threads: int = 1, min_run_time: float = 0.1, blocks: int = 10) -> float:
    """Median milliseconds per call of `fn(*args)` over blocks of about `min_run_time / blocks` seconds each.

    Args:
        fn: the callable timed (a model, a prepared runtime's `run`, ...).
        args: its arguments, built by the caller (they are not part of the time).
        threads: torch intra-op threads while timing (the previous count is restored).
        min_run_time: seconds of timed blocks at least (a call longer than a block: blocks of one call).
        blocks: how many blocks `min_run_time` is cut into; at least three blocks always run.
    """
    import torch

    if min_run_time <= 0 or blocks < 1:
        raise ValueError(f"need min_run_time > 0 and blocks >= 1, got {min_run_time!r} and {blocks!r}")
    timer = timeit.Timer(lambda: fn(*args))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        timer.timeit(1)  # warm-up: kernel selection, allocator
        number = max(1, math.floor(min_run_time / blocks / max(timer.timeit(1), 1e-7)))
        times, spent = [], 0.0
        while spent < min_run_time or len(times) < MIN_BLOCKS:
            seconds = timer.timeit(number)
            times.append(seconds / number)
            spent += seconds
    finally:
        torch.set_num_threads(previous)
    return statistics.median(times) * 1e3
