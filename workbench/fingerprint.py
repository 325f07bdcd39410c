"""What a notebook's report depends on, hashed part by part, so that `workbench run` keeps a report whose inputs have
not changed since it was made (and says which part changed when it runs one again).

The parts: the notebook's source, its parameters and profile, the package's code (every file under workbench/), the
notebook's records (every file under reports/records/<notebook>/, dense references included), the literature
index, the versions of the packages a record names, and the machine (timings belong to the machine that measured
them: another machine runs every notebook again). Anything else a notebook reads — a data root's CIFAR-10 files —
is outside the fingerprint; `workbench run --force` runs regardless.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

from workbench import paths

PARTS = ("notebook", "parameters", "profile", "code", "records", "literature", "versions", "machine")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def tree(folder: Path, suffixes: tuple[str, ...] | None = None) -> str:
    """Hash of every file's relative path and content under `folder` (hidden and temporary files left out)."""
    h = hashlib.sha256()
    if folder.exists():
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = file.relative_to(folder)
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            if suffixes and file.suffix not in suffixes:
                continue
            h.update(rel.as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def machine() -> str:
    """The platform, the CPU model and the number of cores."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        lines = [line for line in cpuinfo.read_text(errors="replace").splitlines() if line.startswith("model name")]
        model = lines[0].split(":", 1)[1].strip() if lines else ""
    return f"{platform.platform()} | {model or platform.processor()} | {os.cpu_count()} cores"


def inputs(notebook: Path, params: dict, profile: str | None) -> dict[str, str]:
    """Each part's hash (the machine as text) for a run of `notebook` with `params` under `profile`."""
    from workbench.provenance import versions

    package = Path(__file__).resolve().parent
    return {
        "notebook": _digest(notebook.read_bytes()),
        "parameters": _digest(json.dumps(params, sort_keys=True, default=repr).encode()),
        "profile": str(profile),
        "code": tree(package, (".py", ".j2", ".json")),
        "records": tree(paths.records_dir(notebook.stem)),
        "literature": tree(paths.literature_dir()),
        "versions": _digest(json.dumps(versions(), sort_keys=True).encode()),
        "machine": machine(),
    }


def stored(executed: Path) -> dict[str, str] | None:
    """The inputs recorded in an executed notebook's metadata, or None (no report, or made before fingerprints)."""
    if not executed.exists():
        return None
    try:
        return json.loads(executed.read_text(encoding="utf-8"))["metadata"]["workbench"]["inputs"]
    except (ValueError, KeyError, TypeError):
        return None


def changed(before: dict[str, str] | None, now: dict[str, str]) -> list[str]:
    """The parts that differ (every part when there is no earlier fingerprint)."""
    if before is None:
        return ["no earlier report"]
    return [part for part in PARTS if before.get(part) != now.get(part)]
