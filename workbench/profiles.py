"""Run profiles: named parameter files under notebooks/profiles/ (`workbench run --profile NAME`).

A profile is a YAML file in the format of `workbench run -f`: flat names apply to every notebook that has them,
a section named after a notebook stem to that notebook only. Its leading comment lines describe it; they are printed
when the profile runs and listed in reports/README.md. `quick` is the notebooks' own defaults (an empty file).
"""

from __future__ import annotations

from pathlib import Path

from workbench import paths

DEFAULT = "quick"
"""The notebooks' own defaults: built in (no parameters), whether or not its file is there to describe it."""


def folder() -> Path:
    return paths.notebooks_dir() / "profiles"


def names() -> list[str]:
    """The profiles there are, sorted (`quick` always)."""
    return sorted({DEFAULT, *(p.stem for p in folder().glob("*.yaml"))})


def path(name: str) -> Path:
    """The file of profile `name`; an unknown name is one line naming the known ones."""
    known = names()
    if name not in known:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(known) or 'none'} (files in {folder()})")
    return folder() / f"{name}.yaml"


def load(name: str) -> dict:
    """The profile's parameters ({} for one that only describes itself, and for `quick` without its file)."""
    from workbench.batch import read_parameter_file

    file = path(name)
    return read_parameter_file(str(file)) if file.exists() else {}


def describe(name: str) -> str:
    """The profile's leading comment lines as one paragraph."""
    file, lines = path(name), []
    if not file.exists():
        return "the notebooks' own defaults"
    for line in file.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(line for line in lines if line)
