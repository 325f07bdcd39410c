"""Literature figures: papers per year by family, top venues, published accuracy-vs-reduction per setting."""

from __future__ import annotations

import pandas as pd

from workbench.literature import results as results_mod
from workbench.literature import schema
from workbench.literature.search import by_family
from workbench.literature.stats import venue_counts

AXIS_LABELS = {
    "flops_reduction_pct": "FLOPs reduction (%)",
    "params_reduction_pct": "parameter reduction (%)",
    "delta_top1": "change in top-1 accuracy (points)",
}
MAX_LEGEND = 12  # more methods than this: only the Pareto-front points are named


def papers_per_year(references: pd.DataFrame, ax=None):
    """Stacked bars: entries per year, coloured by the first family each entry lists; returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    frame = by_family(references.dropna(subset=["year"]), primary=True)
    counts = frame.groupby(["year", "family"]).size().unstack("family", fill_value=0)
    order = [f for f in (*schema.FAMILIES, "unclassified") if f in counts.columns]
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    if counts.empty:
        ax.text(0.5, 0.5, "no entries", ha="center", va="center", transform=ax.transAxes)
        return ax.figure
    years = range(int(counts.index.min()), int(counts.index.max()) + 1)
    counts = counts.reindex(index=years, columns=order, fill_value=0)
    counts.plot.bar(stacked=True, ax=ax, width=0.85)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("year")
    ax.set_ylabel("papers")
    ax.legend(title="family (first listed)", bbox_to_anchor=(1.01, 1), loc="upper left", fontsize="small")
    return ax.figure


def top_venues(references: pd.DataFrame, n: int = 15, ax=None):
    """Horizontal bars: the `n` venues (short names) with most entries; returns the figure."""
    import matplotlib.pyplot as plt

    counts = venue_counts(references, n).set_index("venue")["papers"].sort_values()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.3 * max(len(counts), 3) + 1))
    if counts.empty:
        ax.text(0.5, 0.5, "no entries", ha="center", va="center", transform=ax.transAxes)
        return ax.figure
    counts.plot.barh(ax=ax, color="C0")
    ax.set_xlabel("papers")
    ax.set_ylabel("")
    return ax.figure


def published_tradeoff(
    results: pd.DataFrame,
    settings: list[str],
    x: str = "flops_reduction_pct",
    y: str = "delta_top1",
    annotate: bool = True,
    ncols: int = 2,
):
    """One panel per setting (`ncols` per row): `y` against `x` per method (published numbers), with the
    Pareto front (larger x, larger y) drawn and each method on it named once; returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from workbench import reporting

    frame = results_mod.for_settings(results, settings).dropna(subset=[x, y])
    panels = list(settings) or sorted(frame["setting"].astype(str).unique())
    ncols = max(1, min(ncols, len(panels)))
    nrows = max(1, -(-len(panels) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.0 * nrows), squeeze=False)
    methods = sorted(frame["method"].astype(str).unique())
    palette = dict(zip(methods, sns.color_palette("husl", max(len(methods), 1)), strict=False))
    for index, ax in enumerate(axes.flat):
        if index >= len(panels):
            ax.set_visible(False)
            continue
        setting = panels[index]
        group = frame[frame["setting"].astype(str) == schema.setting_of(*setting.split("/", 1))]
        ax.set_title(setting)
        ax.axhline(0, color="0.6", lw=0.8)
        if group.empty:
            ax.text(0.5, 0.5, "no published results", ha="center", va="center", transform=ax.transAxes)
        else:
            sns.scatterplot(data=group, x=x, y=y, hue="method", palette=palette, ax=ax, legend=False, s=30)
            front = group[reporting.pareto_front(group, x, y)].sort_values(x)
            ax.plot(front[x], front[y], color="black", lw=1, ls="--", marker="o", mfc="none", ms=8)
            if annotate:
                for _, row in front.drop_duplicates("method").iterrows():
                    ax.annotate(
                        _short(row["method"]),
                        (row[x], row[y]),
                        textcoords="offset points",
                        xytext=(4, 4),
                        fontsize="x-small",
                    )
        ax.set_xlabel(AXIS_LABELS.get(x, x))
        ax.set_ylabel(AXIS_LABELS.get(y, y) if index % ncols == 0 else "")
    if 0 < len(methods) <= MAX_LEGEND:
        handles = [plt.Line2D([], [], ls="", marker="o", color=palette[m], label=m) for m in methods]
        fig.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, 0),
            ncol=min(len(methods), 6),
            fontsize="small",
            frameon=False,
        )
    fig.tight_layout()
    return fig


def _short(label: object, width: int = 24) -> str:
    """A point label cut to `width` characters."""
    text = str(label)
    return text if len(text) <= width else text[: width - 1] + "…"
