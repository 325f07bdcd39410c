"""Summaries over seeds and conclusions computed from a sweep's own results (never typed by hand)."""

from __future__ import annotations

import pandas as pd


def summarize(results: pd.DataFrame, by=("method", "target_value"), value: str = "top1") -> pd.DataFrame:
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
    grouped = results.groupby(["method", "target_value"], sort=True)
    table = grouped.agg(
        sparsity_min=("sparsity", "min"),
        sparsity_max=("sparsity", "max"),
        nonzero_min=("nonzero_params", "min"),
        nonzero_max=("nonzero_params", "max"),
        params=("params", "first"),
        flops=("flops", "first"),
    ).reset_index()
    return table.round({"sparsity_min": 4, "sparsity_max": 4})


def highest_safe_sparsity(summary: pd.DataFrame, tolerance: float = 0.01) -> pd.Series:
    """Per method, the highest target whose mean accuracy is within `tolerance` of dense (NaN if none)."""
    ok = summary[summary["drop"] <= tolerance]
    return ok.groupby("method")["target_value"].max().reindex(summary["method"].unique())


def best_at(summary: pd.DataFrame, target: float) -> pd.Series:
    """The summary row of the most accurate method at `target` sparsity."""
    rows = summary[summary["target_value"] == target]
    return rows.loc[rows["top1_mean"].idxmax()]


def layer_spread(layers: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per method, the lowest and highest layer sparsity at `target` (averaged over seeds)."""
    rows = layers[layers["target_value"] == target]
    per_layer = rows.groupby(["method", "layer"], sort=False)["sparsity"].mean().reset_index()
    spread = per_layer.groupby("method")["sparsity"].agg(["min", "max"])
    spread["most_pruned_layer"] = per_layer.loc[per_layer.groupby("method")["sparsity"].idxmax(), "layer"].values
    spread["least_pruned_layer"] = per_layer.loc[per_layer.groupby("method")["sparsity"].idxmin(), "layer"].values
    return spread


def magnitude_conclusions(summary: pd.DataFrame, layers: pd.DataFrame, tolerance: float = 0.01) -> list[str]:
    """Sentences stating what this sweep found, each computed from its own results."""
    top = summary["target_value"].max()
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


def with_structure(results: pd.DataFrame) -> pd.DataFrame:
    """Final structured runs (the last level of iterative ones) and their masked twins, with `structure` (structured
    or unstructured) and `flops_speedup` (the FLOPs reduction each promises: executed for removed channels, nonzero
    multiply-adds for masks)."""
    final = results["level"].isna() | (results["level"] == results["levels"])
    rows = results[final & results["role"].isin(["main", "masked_twin"])].copy()
    rows["structure"] = rows["role"].map({"main": "structured", "masked_twin": "unstructured"})
    rows["flops_speedup"] = rows["effective_flops_reduction"]
    return rows


def structured_key_figures(results: pd.DataFrame) -> pd.DataFrame:
    """Per criterion and FLOPs target: achieved FLOPs reduction and parameters of the structured models, which
    uniform allocation makes independent of the criterion and of training noise (equal over seeds)."""
    structured = results[results["structure"] == "structured"]
    table = structured.groupby(["method", "target_value"], sort=True).agg(
        flops_reduction_min=("flops_reduction", "min"),
        flops_reduction_max=("flops_reduction", "max"),
        params_min=("params", "min"),
        params_max=("params", "max"),
    )
    return table.reset_index().round({"flops_reduction_min": 3, "flops_reduction_max": 3})


def structured_conclusions(results: pd.DataFrame, agreement: pd.DataFrame) -> list[str]:
    """Sentences computed from a structured sweep: best criterion, measured speed, criteria agreement."""
    structured = results[results["structure"] == "structured"]
    summary = summarize(structured, by=("method", "target_value"))
    top = summary["target_value"].max()
    at_top = summary[summary["target_value"] == top].sort_values("top1_mean", ascending=False)
    best, worst = at_top.iloc[0], at_top.iloc[-1]
    lines = [
        f"At {top:g}x fewer FLOPs, {best['method']} keeps the most accuracy ({best['top1_mean']:.3f} mean top-1, "
        f"dense {best['dense']:.3f}); {worst['method']} the least ({worst['top1_mean']:.3f})."
    ]
    spread = at_top["top1_mean"].max() - at_top["top1_mean"].min()
    noise = at_top["top1_sd"].max()
    if pd.notna(noise) and spread <= 2 * noise:
        lines.append(
            f"The spread between criteria ({spread:.3f}) is within twice the largest seed spread "
            f"({noise:.3f}): on this setting the criteria are not distinguishable."
        )
    size = results["latency_batch_size"].iloc[0]
    for structure, row in results.groupby("structure")[["speedup", "efficiency"]].median().iterrows():
        lines.append(
            f"Trained models at the data's input size, batch {size}, {structure}: median measured speedup "
            f"{row['speedup']:.2f}x, efficiency (speedup / FLOPs speedup) {row['efficiency']:.2f}."
        )
    pairs = [(a, b, agreement.loc[a, b]) for i, a in enumerate(agreement.index) for b in agreement.columns[i + 1 :]]
    if pairs:
        high, low = max(pairs, key=lambda p: p[2]), min(pairs, key=lambda p: p[2])
        lines.append(
            f"Criteria agreement: {high[0]} and {high[1]} overlap most (Jaccard {high[2]:.2f}), "
            f"{low[0]} and {low[1]} least ({low[2]:.2f})."
        )
    return lines


def equal_size_comparison(results: pd.DataFrame) -> pd.DataFrame:
    """Structured runs of the criterion the masked twins were matched to, beside those twins: mean top-1,
    nonzero parameters, FLOPs speedup and measured speedup per FLOPs target."""
    twins = results[results["structure"] == "unstructured"]
    if twins.empty:
        return pd.DataFrame()
    rows = results[results["method"].isin(twins["method"].unique())]
    return (
        rows.groupby(["target_value", "structure"], sort=True)
        .agg(
            top1=("top1", "mean"),
            nonzero_params=("nonzero_params", "mean"),
            flops_speedup=("flops_speedup", "mean"),
            speedup=("speedup", "mean"),
            seeds=("seed", "nunique"),
        )
        .reset_index()
    )


def speed_conclusions(native: pd.DataFrame) -> list[str]:
    """One sentence per benchmark row (FLOPs target and batch size) of bench.speedup results."""
    return [
        f"{r['model']} at {r['flops_speedup']:.2f}x fewer FLOPs, batch {r['batch_size']}, {r['threads']} thread(s): "
        f"{r['speedup']:.2f}x faster (efficiency {r['efficiency']:.2f}); masks with as many nonzero weights: "
        f"{r['unstructured_speedup']:.2f}x."
        for _, r in native.iterrows()
    ]


def layer_collapse(layers: pd.DataFrame, full: float = 1 - 1e-9) -> pd.DataFrame:
    """Per method and target: how many layers are emptied (sparsity 1) in any seed, and which."""
    main = layers[layers["role"] == "main"]
    rows = []
    for (method, target), group in main.groupby(["method", "target_value"], sort=True):
        empty = sorted(group.loc[group["sparsity"] >= full, "layer"].astype(str).unique())
        rows.append({"method": method, "target_value": target, "collapsed_layers": len(empty),
                     "which": ", ".join(empty)})  # fmt: skip
    return pd.DataFrame(rows)


def with_variant(results: pd.DataFrame, variant: pd.DataFrame, label: str) -> pd.DataFrame:
    """`results` with the rows of `variant` added under the method name `label` (e.g. an ablation)."""
    return pd.concat([results, variant.assign(method=label)], ignore_index=True)


def scan_matrix(scan: pd.DataFrame, value: str = "drop") -> pd.DataFrame:
    """The sensitivity scan as a layer x ratio matrix, layers in the model's order."""
    order = list(dict.fromkeys(scan["layer"]))
    return scan.pivot(index="layer", columns="ratio", values=value).loc[order]


def allocation_table(scan: pd.DataFrame, sparsities) -> pd.DataFrame:
    """Per layer: its size, and the ratio the sensitivity allocation gives it at each target (uniform = target)."""
    from workbench.pruning.sensitivity_scan import allocate

    table = scan.groupby("layer", sort=False)["weights"].first().reset_index()
    for s in sparsities:
        ratios = allocate(scan, s)
        table[f"ratio at {s:g}"] = table["layer"].map(ratios)
    return table


def sensitivity_conclusions(trained, at_init, before, collapse, correlation) -> list[str]:
    """Sentences computed from notebook 03's results."""
    summary = summarize(trained)
    return (
        _best_and_worst(summary, "After training")
        + _allocation_gain(summary)
        + _best_and_worst(summarize(at_init), "At initialisation")
        + _collapse_lines(collapse)
        + _update_gain(summarize(before))
        + _agreement_line(correlation)
    )


def _best_and_worst(summary: pd.DataFrame, when: str) -> list[str]:
    top = summary["target_value"].max()
    rows = summary[summary["target_value"] == top].sort_values("top1_mean", ascending=False)
    best, worst = rows.iloc[0], rows.iloc[-1]
    return [
        f"{when}, at sparsity {top:g}: {best['method']} keeps the most accuracy ({best['top1_mean']:.3f}, dense "
        f"{best['dense']:.3f}), {worst['method']} the least ({worst['top1_mean']:.3f})."
    ]


def _allocation_gain(summary: pd.DataFrame) -> list[str]:
    by = summary.set_index(["method", "target_value"])["top1_mean"]
    lines = []
    for target in sorted(summary["target_value"].unique()):
        if ("sensitivity_allocation", target) in by and ("layerwise_magnitude", target) in by:
            gain = by[("sensitivity_allocation", target)] - by[("layerwise_magnitude", target)]
            lines.append(f"At {target:g}, sensitivity-guided allocation vs uniform layer-wise magnitude: {gain:+.3f}.")
    return lines


def _collapse_lines(collapse: pd.DataFrame) -> list[str]:
    extreme = collapse["target_value"].max()
    rows = collapse[(collapse["target_value"] == extreme) & (collapse["collapsed_layers"] > 0)]
    if rows.empty:
        return [f"No method empties a whole layer at {extreme:g}."]
    return [f"{r['method']} empties {r['collapsed_layers']} layer(s) at {extreme:g} ({r['which']})." for _, r in
            rows.iterrows()]  # fmt: skip


def _update_gain(summary: pd.DataFrame) -> list[str]:
    by = summary.set_index(["method", "target_value"])["top1_mean"]
    lines = []
    for target in sorted(summary["target_value"].unique()):
        if ("obs", target) not in by or ("obs (mask only)", target) not in by:
            continue
        compared = ("obd", "layerwise_magnitude", "global_magnitude")
        others = ", ".join(f"{m} {by[(m, target)]:.3f}" for m in compared if (m, target) in by)
        lines.append(
            f"Before fine-tuning at {target:g}: OBS {by[('obs', target)]:.3f} with its weight update, "
            f"{by[('obs (mask only)', target)]:.3f} with its mask alone; {others}."
        )
    return lines


def _agreement_line(correlation: pd.DataFrame) -> list[str]:
    names = list(correlation.index)
    pairs = [(a, b, correlation.loc[a, b]) for i, a in enumerate(names) for b in names[i + 1 :]]
    high, low = max(pairs, key=lambda p: p[2]), min(pairs, key=lambda p: p[2])
    return [
        f"Scores agree most between {high[0]} and {high[1]} (Spearman {high[2]:.2f}), least between {low[0]} and "
        f"{low[1]} ({low[2]:.2f})."
    ]
