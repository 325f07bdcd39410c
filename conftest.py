"""Test set-up for `pytest tests` and `pytest --nbval notebooks` alike: every file a test, a notebook kernel or
matplotlib writes (reports, cached baselines, Jupyter and IPython state) goes to a temporary folder."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from workbench import allocator

_HOME = Path(tempfile.mkdtemp(prefix="workbench-tests-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
for _var, _sub in {
    "MPLCONFIGDIR": "matplotlib",
    "IPYTHONDIR": "ipython",
    "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
    "WORKBENCH_REPORTS": "reports",
    "WORKBENCH_CACHE": "cache",
}.items():
    os.environ.setdefault(_var, str(_HOME / _sub))
    Path(os.environ[_var]).mkdir(parents=True, exist_ok=True)
os.environ.setdefault("WORKBENCH_PROGRESS", "0")
allocator.apply_to_children()  # notebook kernels and Dask workers keep freed buffers (workbench/allocator.py)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def quick_timer(monkeypatch):
    """NetAdapt's lookup table (notebook 07's latency budgets) timed with three one-call blocks per entry (the
    timer's least) instead of seven longer blocks, for tests that check parameters rather than the table's
    precision (tests/test_automated.py times it for real)."""
    from workbench.search import latency_table

    real = latency_table.block_median_ms
    monkeypatch.setattr(
        latency_table, "block_median_ms", lambda fn, x, threads, seconds, blocks=7: real(fn, x, threads, 1e-9, 1)
    )
