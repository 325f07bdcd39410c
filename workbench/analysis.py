"""Summaries over seeds and conclusions computed from a sweep's own results (never typed by hand)."""

from __future__ import annotations

import pandas as pd


def summarize(results: pd.DataFrame, by=("method", "target_sparsity"), value: str = "top1") -> pd.DataFrame:
    """Mean, standard deviation and count of `value` over seeds, with the mean achieved sparsity."""
    grouped = results.groupby(list(by), sort=True)
    table = grouped.agg(
        sparsity=("sparsity", "mean"),
        nonzero_params=("nonzero_params", "mean"),
        mean=(value, "mean"),
        sd=(value, "std"),
        seeds=("seed", "nunique"),
        dense=("dense_top1", "mean"),
    ).reset_index()
    table["drop"] = table["dense"] - table["mean"]
    return table.rename(columns={"mean": f"{value}_mean", "sd": f"{value}_sd"})


def key_figures(results: pd.DataFrame) -> pd.DataFrame:
    """The deterministic figures of a sweep (independent of floating-point training noise): per method and
    target, the achieved sparsity and nonzero parameters, which must agree across seeds."""
    grouped = results.groupby(["method", "target_sparsity"], sort=True)
    table = grouped.agg(
        sparsity_min=("sparsity", "min"), sparsity_max=("sparsity", "max"),
        nonzero_min=("nonzero_params", "min"), nonzero_max=("nonzero_params", "max"),
        params=("params", "first"), flops=("flops", "first"),
    ).reset_index()  # fmt: skip
    return table.round({"sparsity_min": 4, "sparsity_max": 4})


def highest_safe_sparsity(summary: pd.DataFrame, tolerance: float = 0.01) -> pd.Series:
    """Per method, the highest target whose mean accuracy is within `tolerance` of dense (NaN if none)."""
    ok = summary[summary["drop"] <= tolerance]
    return ok.groupby("method")["target_sparsity"].max().reindex(summary["method"].unique())


def best_at(summary: pd.DataFrame, target: float) -> pd.Series:
    """The summary row of the most accurate method at `target` sparsity."""
    rows = summary[summary["target_sparsity"] == target]
    return rows.loc[rows["top1_mean"].idxmax()]


def layer_spread(layers: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per method, the lowest and highest layer sparsity at `target` (averaged over seeds)."""
    rows = layers[layers["target_sparsity"] == target]
    per_layer = rows.groupby(["method", "layer"], sort=False)["sparsity"].mean().reset_index()
    spread = per_layer.groupby("method")["sparsity"].agg(["min", "max"])
    spread["most_pruned_layer"] = per_layer.loc[per_layer.groupby("method")["sparsity"].idxmax(), "layer"].values
    spread["least_pruned_layer"] = per_layer.loc[per_layer.groupby("method")["sparsity"].idxmin(), "layer"].values
    return spread


def magnitude_conclusions(summary: pd.DataFrame, layers: pd.DataFrame, tolerance: float = 0.01) -> list[str]:
    """Sentences stating what this sweep found, each computed from its own results."""
    top = summary["target_sparsity"].max()
    best = best_at(summary, top)
    safe = highest_safe_sparsity(summary, tolerance)
    lines = [
        f"At the highest target sparsity ({top:g}), {best['method']} is the most accurate: "
        f"top-1 {best['top1_mean']:.3f} ± {0 if pd.isna(best['top1_sd']) else best['top1_sd']:.3f} "
        f"over {int(best['seeds'])} seed(s), against {best['dense']:.3f} dense."
    ]
    for method, value in safe.items():
        where = f"up to sparsity {value:g}" if pd.notna(value) else "at no tested sparsity"
        lines.append(f"{method} stays within {tolerance * 100:g} percentage point(s) of dense {where}.")
    spread = layer_spread(layers, top)
    for method, row in spread.iterrows():
        if row["max"] - row["min"] < 0.01:
            lines.append(f"At {top:g}, {method} gives every layer the same sparsity ({row['max']:.2f}).")
            continue
        lines.append(
            f"At {top:g}, {method} leaves layer sparsities from {row['min']:.2f} ({row['least_pruned_layer']}) "
            f"to {row['max']:.2f} ({row['most_pruned_layer']})."
        )
    return lines
