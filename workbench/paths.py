"""Every path the workbench uses is a function here; nothing else builds paths by hand.

Names that become parts of paths (notebook tags, run ids) must be safe slugs (`safe_name`): letters, digits,
'-', '_' and '.', not starting with '.', so that no name can climb out of its folder or hide a file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_SLUG = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")


def safe_name(what: str, name: object) -> str:
    """`name` if it is a safe slug (letters, digits, '-', '_', '.'; not starting with '.'), else a one-line error."""
    if not isinstance(name, str) or not _SLUG.fullmatch(name):
        raise ValueError(
            f"{what} must be a non-empty name of letters, digits, '-', '_' and '.' (not starting with '.'), "
            f"got {name!r}"
        )
    return name


def root() -> Path:
    """The repository root (the folder holding pyproject.toml)."""
    return Path(os.environ.get("WORKBENCH_ROOT", Path(__file__).resolve().parent.parent))


def notebooks_dir() -> Path:
    return root() / "notebooks"


def literature_dir() -> Path:
    return root() / "literature"


def reports_dir() -> Path:
    """Where regenerated reports go; WORKBENCH_REPORTS moves them (tests point it at a temp folder; `workbench run`
    points a notebook's kernel at its staging folder)."""
    return Path(os.environ.get("WORKBENCH_REPORTS", root() / "reports"))


def figures_dir(notebook: str) -> Path:
    return reports_dir() / "figures" / safe_name("notebook", notebook)


def results_csv(notebook: str) -> Path:
    return reports_dir() / "results" / f"{safe_name('notebook', notebook)}.csv"


def records_root() -> Path:
    """Where run records are kept: WORKBENCH_RECORDS, else reports/records. `workbench run` passes it to a kernel
    whose reports go to a staging folder, so records of finished runs are kept whether the notebook succeeds or not."""
    return Path(os.environ.get("WORKBENCH_RECORDS", reports_dir() / "records"))


def records_dir(notebook: str) -> Path:
    return records_root() / safe_name("notebook", notebook)


def executed_notebooks_dir() -> Path:
    return reports_dir() / "notebooks"


def staging_dir(notebook: str) -> Path:
    """Where `workbench run` builds a notebook's reports before they replace the previous ones in one step.

    Named `.running-*` under reports/notebooks/, which .gitignore already ignores; the lock, progress file and
    commit journal of the notebook lie beside it (`run_state_file`).
    """
    return executed_notebooks_dir() / f".running-{safe_name('notebook', notebook)}"


def run_state_file(notebook: str, suffix: str) -> Path:
    """A file of a notebook's regeneration beside its staging folder, e.g. its `.lock`, `.progress.json`."""
    return executed_notebooks_dir() / f".running-{safe_name('notebook', notebook)}{suffix}"


def cache_dir() -> Path:
    """Cached dense baselines; WORKBENCH_CACHE moves it."""
    return Path(os.environ.get("WORKBENCH_CACHE", root() / ".cache" / "workbench"))


def data_root() -> Path:
    """Where torchvision data sets are looked for; WORKBENCH_DATA moves it."""
    return Path(os.environ.get("WORKBENCH_DATA", root() / "data"))
