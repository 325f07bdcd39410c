"""Run records: one JSON per run, written atomically the moment the run ends; one tidy frame over all of them.

Records hold real types (never repr/eval). A record's file is `reports/records/<notebook>/<run_id>.json`, where the
run id hashes the run's non-default configuration, so a sweep finds what is done instead of redoing it, and records
of other parameter sets are never touched.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import paths

COLUMNS = (
    "notebook", "family", "method", "role", "level", "model", "dataset", "seed", "target_kind", "target_value",
    "sparsity", "params", "nonzero_params", "flops", "effective_flops", "flops_reduction", "top1", "dense_top1",
)  # fmt: skip
"""The columns every record's row has, in this order (a value that means nothing for a run is empty)."""


@dataclass
class RunRecord:
    """Everything about one run: what was asked, what was measured, and what made it."""

    run_id: str
    notebook: str
    family: str
    method: str
    hparams: dict[str, Any]
    target: dict[str, Any]
    role: str  # "main", or the name of the control this run is
    seed: int
    model: str
    dataset: str
    recipe: dict[str, Any]  # the full configuration, plain values
    metrics: dict[str, Any]
    parent: str | None = None  # the run this one is a control of, or the previous level of
    level: int | None = None  # iterative schedules: level l of `levels`
    levels: int | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The tidy-table row: the shared columns first, then every other scalar metric, then identity."""
        row = {k: getattr(self, k) for k in ("notebook", "family", "method", "role", "level", "model", "dataset")}
        row.update(seed=self.seed, target_kind=self.target.get("kind"), target_value=self.target.get("value"))
        row.update({k: v for k, v in self.metrics.items() if not isinstance(v, (dict, list))})
        row.update(levels=self.levels, hparams=json.dumps(self.hparams, sort_keys=True), run_id=self.run_id)
        row["parent"] = self.parent
        row["git_commit"] = self.provenance.get("git_commit")
        return row

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """The record in `text`; unknown keys are dropped; bad JSON, a missing or mistyped field is a DamagedRecord."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DamagedRecord(f"not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DamagedRecord(f"holds a JSON {type(data).__name__}, not an object")
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise DamagedRecord(f"missing field(s) {', '.join(missing)}")
        for name, kind in _SHAPES.items():
            if name in data and not isinstance(data[name], kind):
                raise DamagedRecord(f"field {name} is a {type(data[name]).__name__}, not a {kind.__name__}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


_SHAPES = {"hparams": dict, "target": dict, "recipe": dict, "metrics": dict, "layers": list, "provenance": dict}
"""The container fields a readable record must have as such (the tidy row reads into them)."""


class DamagedRecord(ValueError):
    """A record file that cannot be read as a RunRecord; `reason` says why, `path` where (if known)."""

    def __init__(self, reason: str, path: Path | None = None):
        self.reason, self.path = reason, path
        super().__init__(f"damaged record {path}: {reason}" if path else reason)


class DamagedRecordWarning(UserWarning):
    """A damaged record was skipped (its path and the reason are in the message)."""


def record_path(notebook: str, run_id: str) -> Path:
    """reports/records/<notebook>/<run_id>.json; both names must be safe slugs (`paths.safe_name`)."""
    return paths.records_dir(notebook) / f"{paths.safe_name('run id', run_id)}.json"


def load_record_file(path: Path) -> RunRecord:
    """The record stored at `path`, or a DamagedRecord naming the path and why it cannot be read."""
    try:
        return RunRecord.from_json(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DamagedRecord(f"not UTF-8 text ({exc.reason})", path) from None
    except DamagedRecord as exc:
        raise DamagedRecord(exc.reason, path) from None


def _read_or_skip(path: Path) -> RunRecord | None:
    """The record at `path`, or None with a DamagedRecordWarning naming the path (`workbench doctor` lists them)."""
    try:
        return load_record_file(path)
    except DamagedRecord as exc:
        warnings.warn(f"{exc}; skipped (`workbench doctor --fix` removes it)", DamagedRecordWarning, stacklevel=3)
        return None


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write `text` (or bytes) to `path` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; reports and records are for everyone who can read the folder
        binary = isinstance(text, bytes)
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_record(record: RunRecord) -> Path:
    """Store one record atomically under its notebook's folder; returns its path."""
    path = record_path(record.notebook, record.run_id)
    write_atomic(path, record.to_json())
    return path


def read_record(notebook: str, run_id: str) -> RunRecord | None:
    """The stored record of `run_id`, or None if that run has not finished (or its record is damaged: a warning
    names it, and the run is computed again)."""
    path = record_path(notebook, run_id)
    return _read_or_skip(path) if path.exists() else None


def record_files(notebook: str | None = None) -> list[Path]:
    """Every stored record file (of one notebook, or of all), sorted."""
    base = paths.records_root()
    folders = (
        [paths.records_dir(notebook)]
        if notebook
        else sorted(p for p in base.glob("*") if p.is_dir() and not p.name.startswith("."))
    )
    return [f for d in folders for f in sorted(d.glob("*.json")) if not f.name.startswith(".")]


def read_records(notebook: str | None = None) -> list[RunRecord]:
    """Every readable stored record (of one notebook, or of all); a damaged one is skipped with a warning naming it."""
    return [rec for f in record_files(notebook) if (rec := _read_or_skip(f)) is not None]


def damaged_records(notebook: str | None = None) -> list[tuple[Path, str]]:
    """(path, reason) of every record file that cannot be read."""
    found = []
    for f in record_files(notebook):
        try:
            load_record_file(f)
        except DamagedRecord as exc:
            found.append((f, exc.reason))
    return found


def records_frame(records: list[RunRecord]) -> pd.DataFrame:
    """Tidy DataFrame of records with the shared columns first."""
    frame = pd.DataFrame([r.to_row() for r in records])
    if frame.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    rest = [c for c in frame.columns if c not in COLUMNS]
    return frame[list(COLUMNS) + rest]


def write_results_csv(notebook: str, records: list[RunRecord]) -> Path:
    """The notebook's tidy CSV, built from `records` (those matching its parameters), written atomically."""
    csv = paths.results_csv(notebook)
    write_atomic(csv, records_frame(records).to_csv(index=False))
    return csv


def load_records(notebook: str | None = None) -> pd.DataFrame:
    """The one aggregator: every record of every family (or of one notebook) as one tidy DataFrame."""
    return records_frame(read_records(notebook))
