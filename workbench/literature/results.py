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


def for_settings(results: pd.DataFrame, settings: list[str] | None = None, once: bool = True) -> pd.DataFrame:
    """Rows (with derived columns) whose setting is in `settings` (all if empty), ordered as `settings`; with
    `once`, each result once (copies quoted in other papers' tables dropped, see `counted`)."""
    frame = with_derived(counted(results) if once else results)
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


COPY_ACCURACY = 0.015  # points: the same pruned accuracy up to rounding (72.582 quoted as 72.58)
COPY_REDUCTION = 1.0  # points: reductions that agree this closely, when both copies give them
SAME_REDUCTIONS = 0.15  # points: both reductions equal up to rounding ...
SAME_REDUCTIONS_ACCURACY = 0.3  # ... make rows copies even when their accuracies differ this much


def likely_copies(results: pd.DataFrame) -> list[tuple[int, int]]:
    """Index pairs of rows that look like one result: same paper and setting, and either the same pruned top-1
    (within COPY_ACCURACY) with reductions that agree where both give them, or both reductions equal with top-1
    within SAME_REDUCTIONS_ACCURACY (a source quoting an older number of the same model)."""
    frame = with_derived(results)
    pairs = []
    for _, group in frame.groupby(["key", "setting"], sort=False):
        rows = list(group.itertuples())
        for i, a in enumerate(rows):
            for b in rows[i + 1 :]:
                if _same_result(a, b):
                    pairs.append((a.Index, b.Index))
    return pairs


def _same_result(a, b) -> bool:
    if pd.isna(a.pruned_top1) or pd.isna(b.pruned_top1):
        return False
    gap = abs(a.pruned_top1 - b.pruned_top1)
    both = ((a.flops_reduction_pct, b.flops_reduction_pct), (a.params_reduction_pct, b.params_reduction_pct))
    reductions = [(x, y) for x, y in both if pd.notna(x) and pd.notna(y)]
    if gap <= COPY_ACCURACY:
        return all(abs(x - y) <= COPY_REDUCTION for x, y in reductions)
    return (
        len(reductions) == 2
        and gap <= SAME_REDUCTIONS_ACCURACY
        and all(abs(x - y) <= SAME_REDUCTIONS for x, y in reductions)
    )


def counted(results: pd.DataFrame) -> pd.DataFrame:
    """Each result once: the rows not marked `counted` = no (copies quoted elsewhere of a result counted here)."""
    if "counted" not in results.columns:
        return results
    return results[results["counted"].fillna("").astype(str) != "no"]


def disagreements(results: pd.DataFrame, columns: tuple[str, ...] = ("baseline_top1", "pruned_top1",
                  "flops_reduction_pct", "params_reduction_pct")) -> pd.DataFrame:  # fmt: skip
    """Results whose copies disagree: one row per (result_id, column) with the values and the sources that give
    them, so a number quoted differently elsewhere stays visible."""
    frame = with_derived(results)
    rows = []
    if "result_id" not in frame.columns:
        return pd.DataFrame(columns=["result_id", "key", "method", "column", "values"])
    linked = frame[frame["result_id"].fillna("") != ""]
    for result_id, group in linked.groupby("result_id"):
        if len(group) < 2:
            continue
        for column in columns:
            given = group.dropna(subset=[column])
            if given[column].round(2).nunique() > 1:
                values = "; ".join(
                    f"{v:g} ({(r or k)})"
                    for v, r, k in zip(given[column], given["reported_in"].fillna(""), given["key"], strict=True)
                )
                first = group.iloc[0]
                rows.append(
                    {
                        "result_id": result_id,
                        "key": first["key"],
                        "method": first["method"],
                        "column": column,
                        "values": values,
                    }  # fmt: skip
                )
    return pd.DataFrame(rows, columns=["result_id", "key", "method", "column", "values"])


COMPARISON_COLUMNS = (
    "method",
    "key",
    "baseline_top1",
    "pruned_top1",
    "delta_top1",
    "flops_reduction_pct",
    "params_reduction_pct",
    "flops_unit",
    "reported_in",
    "copies",
)


def settings(results: pd.DataFrame) -> list[str]:
    """The settings ('resnet56/cifar10', ...) that have results, most results first."""
    frame = with_derived(results)
    return frame["setting"].value_counts().index.astype(str).tolist()


def comparison(
    results: pd.DataFrame,
    setting: str,
    sort: str = "delta_top1",
    family: str | list[str] | None = None,
    references: pd.DataFrame | None = None,
    ascending: bool | None = None,
) -> pd.DataFrame:
    """One setting's results, each counted once, with derived deltas and reductions: COMPARISON_COLUMNS plus the
    family of the method's paper. `sort` is a column (delta_top1 and reductions sort best first); `family` keeps
    the papers that list it. KeyError names the known settings when `setting` has no results."""
    from workbench.literature import bib

    wanted = schema.setting_of(*setting.split("/", 1)) if "/" in setting else setting
    known = settings(results)
    if wanted not in known:
        raise KeyError(f"no results for setting {setting!r}; known settings: {', '.join(known)}")
    frame = with_derived(results)
    copies = frame.groupby(frame["result_id"].fillna("")).size() if "result_id" in frame.columns else None
    frame = counted(frame[frame["setting"] == wanted]).copy()
    frame["copies"] = (
        frame["result_id"].fillna("").map(lambda r: int(copies.get(r, 1)) if r else 1) if copies is not None else 1
    )
    refs = bib.as_frame(references)
    families = dict(zip(refs["key"], refs["family"], strict=True))
    frame["family"] = frame["key"].map(lambda k: families.get(k, "") or "")
    if family:
        chosen = set(schema.check_choices("family", family, schema.FAMILIES))
        frame = frame[frame["family"].map(lambda f: bool(chosen & set(schema.split_list(f))))]
    if sort not in frame.columns:
        raise KeyError(f"unknown sort column {sort!r}; choose from: {', '.join(COMPARISON_COLUMNS)}")
    if ascending is None:
        ascending = sort not in ("delta_top1", "pruned_top1", "flops_reduction_pct", "params_reduction_pct", "speedup")
    for column in ("reported_in",):
        if column not in frame.columns:
            frame[column] = ""
    columns = [c for c in COMPARISON_COLUMNS if c in frame.columns] + ["family"]
    return frame.sort_values(sort, ascending=ascending, na_position="last", kind="stable")[columns].reset_index(
        drop=True
    )


TABLE_COLUMNS = (
    "setting",
    "method",
    "key",
    "family",
    "baseline_top1",
    "pruned_top1",
    "delta_top1",
    "flops_reduction_pct",
    "params_reduction_pct",
    "flops_unit",
    "flops_unit_inferred",
    "speedup",
    "reported_in",
    "copies",
    "result_id",
    "source",
)


def table(results: pd.DataFrame, references: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every result once, all settings, with derived deltas and reductions and the family of its paper:
    TABLE_COLUMNS, ordered by setting (most results first) and delta (best first). For the interactive table."""
    from workbench.literature import bib

    frame = with_derived(results)
    ids = frame["result_id"].fillna("") if "result_id" in frame.columns else pd.Series("", index=frame.index)
    sizes = ids[ids != ""].value_counts()
    frame["copies"] = [int(sizes.get(r, 1)) if r else 1 for r in ids]
    frame = counted(frame).copy()
    refs = bib.as_frame(references)
    families = dict(zip(refs["key"], refs["family"], strict=True))
    frame["family"] = frame["key"].map(lambda k: families.get(k, "") or "")
    for column in TABLE_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    order = {s: i for i, s in enumerate(frame["setting"].value_counts().index)}
    frame = frame.assign(_order=frame["setting"].map(order)).sort_values(
        ["_order", "delta_top1"], ascending=[True, False], na_position="last", kind="stable"
    )
    return frame[list(TABLE_COLUMNS)].reset_index(drop=True)
