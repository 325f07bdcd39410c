"""glibc malloc settings for the processes that train: kernels, Dask workers, test runs.

PyTorch on a CPU allocates and frees activation buffers of hundreds of kilobytes every step. glibc serves those
with mmap and hands them back to the kernel when freed, so each step faults its pages in again (measured with
`perf`: a fifth of the CPU time of two notebooks run side by side went to the kernel, mostly page faults). Keeping
such blocks in the heap is what PyTorch's CPU tuning guide gets by switching to jemalloc or tcmalloc; the same
effect comes from three of glibc's own tunables, no extra library. Measured on notebooks 04 and 05 run two at a
time under nbval: 77 s -> 59 s, system time 29 s -> 4 s, numbers identical. The cost is memory a process keeps
after its peak. Kernels (`workbench run`, the tests) get the settings unless the user set a value; Dask workers of
the local executor always get them (Dask itself would set a 64 KiB trim threshold, for long-lived workers).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

MIB = 1 << 20
SETTINGS = {
    "MALLOC_MMAP_THRESHOLD_": str(256 * MIB),  # blocks below this come from the heap, not from mmap
    "MALLOC_TRIM_THRESHOLD_": str(1024 * MIB),  # free heap kept before returning memory to the kernel
    "MALLOC_TOP_PAD_": str(64 * MIB),  # extra heap taken per growth
}


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings a child process (kernel, worker) should start with: SETTINGS under the user's own values."""
    base = os.environ if base is None else base
    return {key: base.get(key, value) for key, value in SETTINGS.items()}


def apply_to_children() -> None:
    """Set SETTINGS in this process's environment (where unset), for every process it starts from now on; malloc
    reads them at start-up, so this process itself is unchanged."""
    os.environ.update(child_environment())
