"""Read results.csv (published pruning results) with dtypes; derived columns and settings for comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from workbench.literature import schema

DECIMALS = 4  # computed deltas and reductions are rounded to this, hiding float noise like 0.20000000000000284
TEXT_COLUMNS = tuple(c for c in schema.RESULT_COLUMNS if c not in schema.NUMERIC_COLUMNS)


def resolve(path: str | Path | None) -> Path:
    """`path`, or the default results.csv; FileNotFoundError names the missing file."""
    path = Path(path) if path is not None else schema.results_path()
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    return path


def read_raw(path: str | Path | None = None) -> pd.DataFrame:
    """results.csv exactly as written: every cell a string, empty cells ''."""
    return pd.read_csv(resolve(path), dtype=str, keep_default_na=False)


def load_results(path: str | Path | None = None) -> pd.DataFrame:
    """results.csv (default `paths.literature_dir()/'results.csv'`): text columns as strings, numbers as float."""
    frame = read_raw(path)
    for column in frame.columns:
        if column in schema.NUMERIC_COLUMNS:
            frame[column] = pd.to_numeric(frame[column].str.strip().replace("", np.nan), errors="coerce")
        else:
            frame[column] = frame[column].astype("string")
    return frame


def as_frame(results: pd.DataFrame | str | Path | None) -> pd.DataFrame:
    """Accept a results DataFrame, a path, or None (the default file)."""
    return results if isinstance(results, pd.DataFrame) else load_results(results)


def with_derived(results: pd.DataFrame) -> pd.DataFrame:
    """A copy with `setting` added and missing delta/reduction values computed from the absolute ones."""
    frame = results.copy()
    frame["setting"] = [schema.setting_of(m, d) for m, d in zip(frame["model"], frame["dataset"], strict=True)]
    delta = (frame["pruned_top1"] - frame["baseline_top1"]).round(DECIMALS)
    frame["delta_top1"] = frame["delta_top1"].fillna(delta)
    for kind in ("flops", "params"):
        computed = (100.0 * (1.0 - frame[f"{kind}_pruned"] / frame[f"{kind}_base"])).round(DECIMALS)
        frame[f"{kind}_reduction_pct"] = frame[f"{kind}_reduction_pct"].fillna(computed)
    return frame


def for_settings(results: pd.DataFrame, settings: list[str] | None = None) -> pd.DataFrame:
    """Rows (with derived columns) whose setting is in `settings` (all if empty), ordered as `settings`."""
    frame = with_derived(results)
    if not settings:
        return frame
    wanted = [schema.setting_of(*s.split("/", 1)) if "/" in s else s for s in settings]
    frame = frame[frame["setting"].isin(wanted)].copy()
    frame["setting"] = pd.Categorical(frame["setting"], categories=wanted, ordered=True)
    return frame.sort_values(["setting", "method"], kind="stable")


def pareto_methods(
    results: pd.DataFrame,
    settings: list[str] | None = None,
    x: str = "flops_reduction_pct",
    y: str = "delta_top1",
) -> pd.DataFrame:
    """Per setting, the rows not dominated in (larger `x`, larger `y`): setting, method, key, x, y."""
    from workbench import reporting

    frame = for_settings(results, settings)
    parts = []
    for setting, group in frame.groupby("setting", observed=True, sort=True):
        front = group[reporting.pareto_front(group, x, y)]
        parts.append(front.assign(setting=str(setting))[["setting", "method", "key", x, y]].sort_values(x))
    columns = ["setting", "method", "key", x, y]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
