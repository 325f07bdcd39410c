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
MAX_LEGEND = 12  # more methods than this: only the Pareto-front points and the classic methods are named
CLASSIC = {  # paper key -> label: methods named on every panel where they appear, besides the Pareto front
    "han2015learning": "Han 2015",
    "han2016deep": "Deep Compression",
    "guo2016dynamic": "DNS",
    "li2017pruning": "L1 (Li 2017)",
    "luo2017thinet": "ThiNet",
    "liu2017learning": "Slimming",
    "he2017channel": "CP",
    "he2018soft": "SFP",
    "he2018amc": "AMC",
    "yu2018nisp": "NISP",
    "he2019filter": "FPGM",
    "lin2019optimal": "GAL",
    "lin2020hrank": "HRank",
    "wen2016learning": "SSL",
    "huang2018datadriven": "SSS",
}


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
                classic = group[group["key"].astype(str).isin(CLASSIC)].sort_values(y, ascending=False)
                classic = classic.drop_duplicates("key").assign(method=lambda f: f["key"].astype(str).map(CLASSIC))
                ax.scatter(classic[x], classic[y], s=60, facecolors="none", edgecolors="0.3", lw=0.8)
                front = front[~front["key"].astype(str).isin(classic["key"].astype(str))]
                for _, row in pd.concat([front.drop_duplicates("method"), classic]).iterrows():
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


HOVER = ("method", "key", "reported_in", "baseline_top1", "pruned_top1", "delta_top1", "flops_reduction_pct",
         "params_reduction_pct", "flops_unit", "source")  # fmt: skip


def interactive_tradeoff(results: pd.DataFrame, settings: list[str], y: str = "delta_top1", height: int = 520):
    """A plotly figure: `y` against the FLOPs reduction and, by its buttons, the parameter reduction, one panel per
    setting, each result once; hovering a point shows the method, its paper, the paper that reported the number and
    the source. Classic methods (CLASSIC) are drawn as diamonds and named. Returns the figure (show it with
    renderer 'notebook' for an HTML that works offline with one inlined copy of plotly.js)."""
    import plotly.express as px

    frame = results_mod.for_settings(results, settings)
    frame["setting"] = frame["setting"].astype(str)
    frame["classic"] = frame["key"].astype(str).map(CLASSIC).fillna("")
    frame["shape"] = frame["classic"].map(lambda c: "classic method" if c else "other")
    for column in HOVER:
        if column not in frame.columns:
            frame[column] = ""
    frame = frame.dropna(subset=[y]).astype({c: "object" for c in HOVER if frame[c].dtype == "string"})
    frame["x_flops"], frame["x_params"] = frame["flops_reduction_pct"], frame["params_reduction_pct"]
    panels = [s for s in settings if s in set(frame["setting"])] or sorted(frame["setting"].unique())
    fig = px.scatter(
        frame,
        x="x_flops",
        y=y,
        color="method" if frame["method"].nunique() <= MAX_LEGEND else None,
        symbol="shape",
        symbol_map={"classic method": "diamond", "other": "circle"},
        facet_col="setting",
        facet_col_wrap=2,
        category_orders={"setting": panels},
        hover_data={c: True for c in HOVER} | {"x_flops": False, "shape": False, "setting": False},
        text="classic",
        height=height * max(1, -(-len(panels) // 2)) // 2 + 120,
    )
    fig.update_traces(textposition="top center", textfont_size=9, marker_size=8)
    fig.update_xaxes(matches=None, title_text=AXIS_LABELS["flops_reduction_pct"])
    fig.update_yaxes(title_text=AXIS_LABELS.get(y, y))
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    by_trace = list(fig.data)
    flops = [list(trace.x) for trace in by_trace]
    params = _params_x(frame, by_trace)
    fig.update_layout(
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "x": 0,
                "y": 1.12,
                "buttons": [
                    {
                        "label": "FLOPs reduction",
                        "method": "update",
                        "args": [
                            {"x": flops},
                            {
                                f"xaxis{i or ''}.title.text": AXIS_LABELS["flops_reduction_pct"]
                                for i in range(len(panels) + 1)
                            },
                        ],
                    },
                    {
                        "label": "parameter reduction",
                        "method": "update",
                        "args": [
                            {"x": params},
                            {
                                f"xaxis{i or ''}.title.text": AXIS_LABELS["params_reduction_pct"]
                                for i in range(len(panels) + 1)
                            },
                        ],
                    },
                ],
            }
        ],  # fmt: skip
        legend_title_text="",
        margin={"t": 90},
    )
    return fig


def _params_x(frame: pd.DataFrame, traces) -> list[list[float | None]]:
    """For each trace, the parameter reductions of its points (matched by the hover data: method, key, pruned top-1)."""
    lookup = {
        (str(m), str(k), p): r
        for m, k, p, r in zip(frame["method"], frame["key"], frame["pruned_top1"], frame["x_params"], strict=True)
    }
    out = []
    for trace in traces:
        data = trace.customdata if trace.customdata is not None else []
        out.append([_nan_none(lookup.get((str(row[0]), str(row[1]), row[4]))) for row in data])
    return out


def _nan_none(value):
    return None if value is None or value != value else float(value)


def offline_html(fig):
    """`fig` as an IPython HTML output with plotly.js inlined and no MathJax (plotly's notebook renderer always
    loads MathJax from a CDN, which fails offline): the executed notebook's HTML works from the folder alone."""
    from IPython.display import HTML

    return HTML(fig.to_html(include_plotlyjs=True, include_mathjax=False, full_html=False))
