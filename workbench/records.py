"""Run records: one JSON per run, written atomically the moment the run ends; one tidy frame over all of them.

Records hold real types (never repr/eval). A record's file is `reports/records/<notebook>/<run_id>.json`, where the
run id hashes the run's non-default configuration, so a sweep finds what is done instead of redoing it, and records
of other parameter sets are never touched.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
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
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def record_path(notebook: str, run_id: str) -> Path:
    return paths.records_dir(notebook) / f"{run_id}.json"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
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
    """The stored record of `run_id`, or None if that run has not finished."""
    path = record_path(notebook, run_id)
    return RunRecord.from_json(path.read_text()) if path.exists() else None


def read_records(notebook: str | None = None) -> list[RunRecord]:
    """Every stored record (of one notebook, or of all)."""
    base = paths.reports_dir() / "records"
    folders = (
        [paths.records_dir(notebook)]
        if notebook
        else sorted(p for p in base.glob("*") if p.is_dir() and not p.name.startswith("."))
    )
    return [RunRecord.from_json(f.read_text()) for d in folders for f in sorted(d.glob("*.json"))]


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
