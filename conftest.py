"""Test set-up for `pytest tests` and `pytest --nbval notebooks` alike: every file a test, a notebook kernel or
matplotlib writes (reports, cached baselines, Jupyter and IPython state) goes to a temporary folder."""

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="workbench-tests-"))
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
os.environ.setdefault("MPLBACKEND", "Agg")
