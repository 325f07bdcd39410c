"""Run records: one JSON per run (real types, never repr/eval), a tidy CSV per notebook, one loader."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import paths

COLUMNS = (
    "notebook", "family", "method", "model", "dataset", "seed", "target_sparsity", "sparsity",
    "params", "nonzero_params", "flops", "top1", "dense_top1",
)  # fmt: skip


@dataclass
class RunRecord:
    """Everything about one run: what was asked, what was measured, and what made it."""

    run_id: str
    notebook: str
    family: str
    method: str
    model: str
    dataset: str
    seed: int
    target_sparsity: float
    config: dict[str, Any]
    metrics: dict[str, Any]
    layers: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The tidy-table row: the required columns first, then every scalar metric, then provenance."""
        row = {k: getattr(self, k) for k in ("notebook", "family", "method", "model", "dataset", "seed")}
        row["target_sparsity"] = self.target_sparsity
        row.update(self.metrics)
        row["run_id"] = self.run_id
        row["git_commit"] = self.provenance.get("git_commit")
        return row

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        return cls(**json.loads(text))


def write_notebook_records(notebook: str, records: list[RunRecord]) -> Path:
    """Replace the notebook's records and CSV as a whole (written aside, then swapped in)."""
    final = paths.records_dir(notebook)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{notebook}-", dir=final.parent))
    for record in records:
        (staging / f"{record.run_id}.json").write_text(record.to_json())
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    csv = paths.results_csv(notebook)
    csv.parent.mkdir(parents=True, exist_ok=True)
    table = records_frame(records)
    tmp = csv.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, csv)
    return csv


def records_frame(records: list[RunRecord]) -> pd.DataFrame:
    """Tidy DataFrame of records with the required columns first."""
    frame = pd.DataFrame([r.to_row() for r in records])
    if frame.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    rest = [c for c in frame.columns if c not in COLUMNS]
    return frame[list(COLUMNS) + rest]


def read_records(notebook: str | None = None) -> list[RunRecord]:
    """Every stored record (of one notebook, or of all)."""
    base = paths.reports_dir() / "records"
    folders = (
        [paths.records_dir(notebook)]
        if notebook
        else sorted(p for p in base.glob("*") if p.is_dir() and not p.name.startswith("."))
    )
    return [RunRecord.from_json(f.read_text()) for d in folders for f in sorted(d.glob("*.json"))]


def load_records(notebook: str | None = None) -> pd.DataFrame:
    """The one aggregator: every record (of one notebook, or of all) as a tidy pandas DataFrame."""
    return records_frame(read_records(notebook))
