"""Where a result came from: code version, package versions, machine, time."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from importlib import metadata

import torch

from workbench import paths

PACKAGES = (
    "workbench",
    "torch",
    "torchvision",
    "torch-pruning",
    "numpy",
    "scikit-learn",
    "mnist1d",
    "pandas",
)


def git_commit() -> dict[str, object]:
    """The commit of the working tree and whether it had uncommitted changes (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=paths.root(), capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--", "workbench", "notebooks")
    return {"git_commit": commit, "git_dirty": bool(dirty) if commit else None}


def versions() -> dict[str, str | None]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def provenance() -> dict[str, object]:
    """A snapshot to store with every record."""
    return {
        **git_commit(),
        "versions": versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "time_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
