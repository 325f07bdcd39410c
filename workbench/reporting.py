"""Plot style, trade-off and Pareto plots, and saving figures and tables under reports/."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd

from workbench import paths


def set_style() -> None:
    """One look for every figure; SVG output is made reproducible (no dates, fixed ids)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    mpl.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight", "svg.hashsalt": "wb"})


class Report:
    """Where one notebook's figures and tables go: reports/figures/<notebook>/ and reports/tables/."""

    def __init__(self, notebook: str):
        if not notebook or "/" in notebook or notebook.endswith(".ipynb"):
            raise ValueError(f"notebook must be a notebook stem like '01-magnitude', got {notebook!r}")
        self.notebook = notebook

    def savefig(self, fig, name: str) -> None:
        """Save `fig` as PNG and SVG named `name` under reports/figures/<notebook>/ and say where."""
        out = paths.figures_dir(self.notebook)
        out.mkdir(parents=True, exist_ok=True)
        saved = []
        for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None})):
            path = out / f"{name}.{ext}"
            fig.savefig(path, metadata=meta)
            saved.append(path.name)
        print(f"saved {', '.join(saved)} in reports/figures/{self.notebook}/")

    def save_table(self, table: pd.DataFrame, name: str) -> None:
        """Save a table as CSV under reports/tables/<notebook>/<name>.csv and say where."""
        out = paths.reports_dir() / "tables" / self.notebook
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{name}.csv"
        table.to_csv(path, index=False)
        print(f"saved {path.name} in reports/tables/{self.notebook}/")


def pareto_front(frame: pd.DataFrame, x: str, y: str, maximize_x: bool = True, maximize_y: bool = True) -> pd.Series:
    """Boolean mask of the rows not dominated in (x, y); NaN rows are never on the front."""
    xs = frame[x].to_numpy(float) * (1 if maximize_x else -1)
    ys = frame[y].to_numpy(float) * (1 if maximize_y else -1)
    ok = ~(np.isnan(xs) | np.isnan(ys))
    front = np.zeros(len(frame), dtype=bool)
    for i in np.flatnonzero(ok):
        better = ok & (xs >= xs[i]) & (ys >= ys[i]) & ((xs > xs[i]) | (ys > ys[i]))
        front[i] = not better.any()
    return pd.Series(front, index=frame.index)


def plot_tradeoff(frame: pd.DataFrame, x: str, y: str, hue: str = "method", ax=None, xlabel=None, ylabel=None):
    """Mean of `y` against `x` per `hue`, with a band of ±1 standard deviation over seeds."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.lineplot(data=frame, x=x, y=y, hue=hue, style=hue, markers=True, dashes=False, errorbar="sd", ax=ax)
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    return ax


def plot_layer_sparsity(layers: pd.DataFrame, target: float, methods=None, ax=None):
    """Bars of the sparsity each method leaves in each layer at one target (mean over seeds)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = layers[layers["target_value"] == target]
    if methods:
        rows = rows[rows["method"].isin(methods)]
    if rows.empty:
        raise ValueError(
            f"no layer rows at target sparsity {target}; targets: {sorted(layers['target_value'].unique())}"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.4, 0.5 * rows["layer"].nunique() + 3), 4.2))
    sns.barplot(data=rows, x="layer", y="sparsity", hue="method", errorbar=None, ax=ax)
    ax.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_ylim(0, 1)
    ax.set_ylabel("sparsity of the layer's weights")
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize="small")
    return ax


def plot_heatmap(matrix: pd.DataFrame, title: str = "", ax=None, fmt: str = ".2f"):
    """An annotated heatmap of a square table such as criteria agreement (values in [0, 1])."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 * len(matrix) + 2, 0.8 * len(matrix) + 1.5))
    sns.heatmap(matrix, annot=True, fmt=fmt, vmin=0, vmax=1, cmap="viridis", square=True, ax=ax)
    ax.set_title(title)
    return ax


def plot_speed_vs_flops(frame: pd.DataFrame, hue: str = "structure", style: str | None = None, ax=None):
    """Measured speedup against FLOPs speedup; the dashed diagonal is 'speed exactly as FLOPs predict'."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.scatterplot(data=frame, x="flops_speedup", y="speedup", hue=hue, style=style or hue, s=70, ax=ax)
    top = max(frame["flops_speedup"].max(), frame["speedup"].max()) * 1.05
    ax.plot([1, top], [1, top], "k--", linewidth=1, label="speedup = FLOPs speedup")
    ax.axhline(1, color="grey", linewidth=0.8)
    ax.set_xlabel("FLOPs speedup (dense FLOPs / pruned FLOPs)")
    ax.set_ylabel("measured CPU speedup (latency ratio)")
    ax.legend(fontsize="small")
    return ax


def plot_audit(rows: list[dict], ax=None):
    """Channels of every coupled group, coloured by whether it may be pruned, labelled by its root layer."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = pd.DataFrame(rows)
    frame["status"] = frame["reason"]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.4, 0.28 * len(frame) + 2), 4.2))
    sns.barplot(data=frame, x="root", y="channels", hue="status", dodge=False, ax=ax)
    ax.tick_params(axis="x", rotation=90, labelsize="x-small")
    ax.set_xlabel("group (named by its root layer)")
    ax.set_ylabel("channels in the group")
    return ax


def sparsity_axis(ax, values) -> None:
    """A logit-scaled x axis for sparsities near 1 (0.9, 0.99, 0.999 equally spaced), ticks at `values`."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("logit")
    ax.set_xticks(list(values), [f"{v:g}" for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_layer_remaining(layers: pd.DataFrame, target: float, ax=None):
    """Bars of the weights each method leaves in each layer at one target (mean over seeds, log scale; a missing bar
    is an emptied layer: the network is cut there)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = layers[(layers["target_value"] == target) & (layers["role"] == "main")]
    if rows.empty:
        raise ValueError(f"no layer rows at target {target}; targets: {sorted(layers['target_value'].unique())}")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.4, 0.5 * rows["layer"].nunique() + 3), 4.2))
    sns.barplot(data=rows, x="layer", y="nonzero", hue="method", errorbar=None, ax=ax)
    ax.set_yscale("log")
    ax.set_ylabel("weights left in the layer (log)")
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize="small")
    return ax


def plot_bars(frame: pd.DataFrame, x: str, y: str, hue: str, ax=None, ylabel=None):
    """Grouped bars of the mean of `y` per `x` and `hue`, with ±1 standard deviation over seeds."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.4, 1.6 * frame[x].nunique() + 2), 4.2))
    sns.barplot(data=frame, x=x, y=y, hue=hue, errorbar="sd", ax=ax)
    ax.set_ylabel(ylabel or y)
    ax.legend(fontsize="small")
    return ax


def dense_band(ax, mean: float, sd: float, label: str = "dense") -> None:
    """A horizontal line at the dense mean with a ±1 sd band."""
    ax.axhline(mean, color="black", linestyle=":", label=label)
    ax.axhspan(mean - sd, mean + sd, color="black", alpha=0.08)


def remaining_axis(ax, values) -> None:
    """A log-scaled x axis of the fraction of weights left, decreasing to the right, ticks at `values` in percent."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ticks = sorted(set(values), reverse=True)
    ax.set_xticks(ticks, [f"{100 * v:.3g}%" for v in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(max(ticks) * 1.15, min(ticks) / 1.15)


def legend_outside(ax, fontsize: str = "small") -> None:
    """The legend to the right of the axes, so it hides no line."""
    ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
