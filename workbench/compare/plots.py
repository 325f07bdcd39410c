"""The comparison's figures: delta top-1 against a reduction for every family on one axis, with 95% CIs and the
Pareto front across families; and each method's delta at every fine-tuning learning rate."""

from __future__ import annotations

import pandas as pd

AXES = {
    "flops_x": "FLOPs reduction (x, as each kind executes them)",
    "params_x": "conv/linear weight reduction (x = 1 / (1 - sparsity))",
    "speedup": "measured speedup on this CPU (x, dense / pruned latency)",
}
MARKERS = {"structured": "o", "dynamic": "D", "unstructured": "s", "lottery": "^"}


def tradeoff(best: pd.DataFrame, x: str, ax=None, title: str = "", legend: bool = True, floor: float | None = None):
    """One point per method and target (its best setting): mean delta top-1 with the 95% CI over seeds, colour by
    family, marker by kind, and the Pareto front across families as a line. Points below `floor` (a random
    baseline far below the rest) are drawn on the floor as a down-pointing triangle labelled with their value."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(7.2, 4.6))
    families = sorted(best["family"].unique())
    colours = dict(zip(families, sns.color_palette("colorblind", len(families)), strict=True))
    for row in best.itertuples():
        value = getattr(row, x)
        if pd.isna(value):
            continue
        if floor is not None and row.delta < floor:
            ax.plot(value, floor, "v", color=colours[row.family], markersize=7)
            ax.annotate(f"{row.method} ({row.delta:.1f}, off scale)", (value, floor), textcoords="offset points",
                        xytext=(4, 3), fontsize=7)  # fmt: skip
            continue
        err = None if pd.isna(row.delta_ci) else row.delta_ci
        ax.errorbar(value, row.delta, yerr=err, fmt=MARKERS.get(row.kind, "o"), color=colours[row.family],
                    capsize=3, markersize=6)  # fmt: skip
        ax.annotate(row.method, (value, row.delta), textcoords="offset points", xytext=(4, 3), fontsize=7)
    front = best[best["on_front"]].sort_values(x)
    ax.plot(front[x], front["delta"].clip(lower=floor), color="black", linestyle="--", linewidth=1,
            label="Pareto front (all families)")  # fmt: skip
    ax.axhline(0.0, color="grey", linestyle=":", linewidth=1, label="dense")
    for family in families:
        ax.plot([], [], "o", color=colours[family], label=family)
    for kind, marker in MARKERS.items():
        if kind in set(best["kind"]):
            ax.plot([], [], marker, color="grey", label=kind, linestyle="none")
    ax.set_xlabel(AXES.get(x, x))
    ax.set_ylabel("delta top-1 (points, 95% CI over seeds)")
    ax.set_title(title)
    if legend:
        ax.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax


def floor_below(best: pd.DataFrame, baselines, margin: float = 3.0) -> float | None:
    """A y floor just under every method but the random baselines (None when no baseline lies below it)."""
    rest = best[~best["method"].isin(baselines)]
    if rest.empty:
        return None
    floor = float((rest["delta"] - rest["delta_ci"].fillna(0)).min()) - margin
    return floor if (best["delta"] < floor).any() else None


def lr_bars(best: pd.DataFrame, ax=None, title: str = ""):
    """Mean delta top-1 of every method at each fine-tuning learning rate (bars, CI as error bars)."""
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(7.2, 4.0))
    order = best.groupby("method")["delta"].mean().sort_values(ascending=False).index.tolist()
    lrs = sorted(best["finetune_lr"].unique())
    width = 0.8 / len(lrs)
    for i, lr in enumerate(lrs):
        rows = best[best["finetune_lr"] == lr].set_index("method").reindex(order)
        xs = np.arange(len(order)) + i * width
        ax.bar(xs, rows["delta"], width, yerr=rows["delta_ci"].fillna(0), capsize=2, label=f"fine-tuning LR {lr:g}")
    ax.set_xticks(np.arange(len(order)) + 0.4 - width / 2, order, rotation=45, ha="right")
    ax.axhline(0.0, color="grey", linestyle=":", linewidth=1)
    ax.set_ylabel("delta top-1 (points)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax
