"""Every path the workbench uses is a function here; nothing else builds paths by hand."""

from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    """The repository root (the folder holding pyproject.toml)."""
    return Path(os.environ.get("WORKBENCH_ROOT", Path(__file__).resolve().parent.parent))


def notebooks_dir() -> Path:
    return root() / "notebooks"


def literature_dir() -> Path:
    return root() / "literature"


def reports_dir() -> Path:
    """Where regenerated reports go; WORKBENCH_REPORTS moves them (tests point it at a temp folder)."""
    return Path(os.environ.get("WORKBENCH_REPORTS", root() / "reports"))


def figures_dir(notebook: str) -> Path:
    return reports_dir() / "figures" / notebook


def results_csv(notebook: str) -> Path:
    return reports_dir() / "results" / f"{notebook}.csv"


def records_dir(notebook: str) -> Path:
    return reports_dir() / "records" / notebook


def executed_notebooks_dir() -> Path:
    return reports_dir() / "notebooks"


def cache_dir() -> Path:
    """Cached dense baselines; WORKBENCH_CACHE moves it."""
    return Path(os.environ.get("WORKBENCH_CACHE", root() / ".cache" / "workbench"))


def data_root() -> Path:
    """Where torchvision data sets are looked for; WORKBENCH_DATA moves it."""
    return Path(os.environ.get("WORKBENCH_DATA", root() / "data"))
