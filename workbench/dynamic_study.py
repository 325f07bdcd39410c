"""Notebook 06's experiments and analysis: dynamic execution (FBS, DGNet's channel gate) against static L1 channel
pruning at the same mean FLOPs.

The dynamic grids are defined once here (the notebook and its parameter check run the same ones); the static
baseline's targets are the dynamic runs' measured mean FLOPs reductions, so it runs after them. Every table and
sentence is computed from the sweeps' records and from the restored models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.runner.sweep import SweepResult

NOTEBOOK = "06-dynamic"
BASELINE = "l1"


def grids(
    *,
    dataset: str,
    model: str,
    seeds,
    epochs: int,
    batch_size: int,
    lr: float,
    densities,
    flops_reductions,
    finetune_epochs: int,
    finetune_lr: float,
) -> dict[str, dict[str, Any]]:
    """The dynamic sweeps: FBS at each density, DGNet at each FLOPs reduction (the same dense runs and budget)."""
    common = dict(seeds=seeds, dataset=dataset, model=model, epochs=epochs, batch_size=batch_size, lr=lr,
                  finetune_epochs=finetune_epochs, finetune_lr=finetune_lr)  # fmt: skip
    return {
        "fbs": {**common, "methods": ["fbs"], "targets": densities, "target_kind": "gate_density"},
        "dgnet": {**common, "methods": ["dgnet"], "targets": flops_reductions, "target_kind": "flops_reduction"},
    }


def static_grid(dynamic: pd.DataFrame, grid: dict[str, Any]) -> dict[str, Any]:
    """L1 channel pruning to every dynamic setting's mean FLOPs reduction (mean over seeds, 3 decimals), with the
    dynamic grid's data, dense training and fine-tuning budget (`grid`: one of `grids`' values)."""
    reductions = sorted({round(v, 3) for v in setting_means(dynamic)["flops_mean_reduction"]})
    keep = ("seeds", "dataset", "model", "epochs", "batch_size", "lr", "finetune_epochs", "finetune_lr")
    return {**{k: grid[k] for k in keep}, "methods": [BASELINE], "targets": reductions,
            "target_kind": "flops_reduction", "hparams": {BASELINE: {"round_to": 0}}}  # fmt: skip


def label(method: str, target_value: float) -> str:
    """'fbs d=0.5', 'dgnet 2x', 'l1 3.91x'."""
    if method == "fbs":
        return f"fbs d={target_value:g}"
    return f"{method} {target_value:g}x"


def labelled(results: pd.DataFrame) -> pd.DataFrame:
    out = results[results["role"] == "main"].copy()
    out["setting"] = [label(m, v) for m, v in zip(out["method"], out["target_value"], strict=True)]
    return out


def setting_means(dynamic: pd.DataFrame) -> pd.DataFrame:
    """Per dynamic setting: mean over seeds of accuracy and executed FLOPs (mean, median, 95th percentile)."""
    frame = labelled(dynamic)
    columns = ["top1", "dense_top1", "flops_mean", "flops_p50", "flops_p95", "flops_mean_reduction", "dense_flops"]
    return frame.groupby(["method", "target_value", "setting"], sort=False)[columns].mean().reset_index()


def matched_static(dynamic: pd.DataFrame, static: pd.DataFrame) -> pd.DataFrame:
    """Each dynamic setting beside L1 at its mean FLOPs reduction: accuracy (mean ± sd over seeds) of both and
    what input dependence buys (dynamic minus static top-1)."""
    means = setting_means(dynamic)
    stat = static[static["role"] == "main"].assign(key=lambda f: f["target_value"].round(3))
    dyn = labelled(dynamic)
    rows = []
    for _, m in means.iterrows():
        key = round(m["flops_mean_reduction"], 3)
        s = stat[stat["key"] == key]
        d = dyn[dyn["setting"] == m["setting"]]
        rows.append({
            "setting": m["setting"], "mean_flops_reduction": m["flops_mean_reduction"],
            "p95_flops_reduction": m["dense_flops"] / m["flops_p95"],
            "dynamic_top1": d["top1"].mean(), "dynamic_sd": d["top1"].std(ddof=0),
            "static_reduction": s["flops_reduction"].mean(), "static_top1": s["top1"].mean(),
            "static_sd": s["top1"].std(ddof=0), "dense_top1": m["dense_top1"],
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table["dynamic_minus_static"] = table["dynamic_top1"] - table["static_top1"]
    return table


def key_figures(dynamic: SweepResult, static: pd.DataFrame) -> pd.DataFrame:
    """Deterministic figures per setting: runs; FBS computes exactly ceil(d*C) channels per input in every gated
    layer; DGNet's mean FLOPs within 15% of its budget; the static baseline reaches the dynamic mean FLOPs (2%)."""
    import math

    rows = []
    table = matched_static(dynamic.results, static)
    for rec in dynamic.records:
        if rec.role != "main":
            continue
        activity = rec.metrics["gate_activity"]
        if rec.method == "fbs":
            d = rec.target["value"]
            ok = all(math.isclose(sum(a), math.ceil(d * len(a)), abs_tol=1e-6) for a in activity.values())
            check = "exactly ceil(d*C) channels per input"
        else:
            ok = abs(rec.metrics["flops_mean_reduction"] / rec.target["value"] - 1) <= 0.15
            check = "mean FLOPs within 15% of the budget"
        rows.append({"setting": label(rec.method, rec.target["value"]), "seed": rec.seed, "check": check, "ok": ok})
    frame = pd.DataFrame(rows).groupby(["setting", "check"], sort=False).agg(runs=("seed", "count"), ok=("ok", "all"))
    frame = frame.reset_index()
    reached = dict(zip(table["setting"], table["static_reduction"] >= 0.98 * table["mean_flops_reduction"],
                       strict=True))  # fmt: skip
    frame["static_matched"] = frame["setting"].map(reached)
    return frame


def per_input(result: SweepResult) -> pd.DataFrame:
    """One row per test input and main run: its executed FLOPs and reduction (dense FLOPs / its FLOPs)."""
    rows = []
    for rec in result.records:
        if rec.role == "main":
            flops = np.asarray(rec.metrics["flops_per_input"])
            rows.append(pd.DataFrame({"setting": label(rec.method, rec.target["value"]), "seed": rec.seed,
                                      "input": np.arange(len(flops)), "flops": flops,
                                      "reduction": rec.metrics["dense_flops"] / flops}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def gate_activity(result: SweepResult, setting: str, seed: int) -> pd.DataFrame:
    """One row per gated layer and channel of one run: how often the channel is on (channels sorted, busiest first)."""
    rec = next(r for r in result.records if r.role == "main" and r.seed == seed
               and label(r.method, r.target["value"]) == setting)  # fmt: skip
    rows = []
    for layer, values in rec.metrics["gate_activity"].items():
        for rank, value in enumerate(sorted(values, reverse=True)):
            rows.append({"layer": layer, "channel_rank": rank, "channels": len(values), "on": value})
    return pd.DataFrame(rows)


def extremes(table: pd.DataFrame, setting: str, seed: int, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `n` test inputs of one run that execute the fewest and the most FLOPs (ties: lower index first)."""
    rows = table[(table["setting"] == setting) & (table["seed"] == seed)].sort_values(["flops", "input"])
    return rows.head(n), rows.tail(n).iloc[::-1]


def widest_setting(table: pd.DataFrame) -> str:
    """The setting whose per-input FLOPs spread most (95th over 5th percentile)."""
    spread = table.groupby("setting")["flops"].agg(lambda f: np.percentile(f, 95) / np.percentile(f, 5))
    return str(spread.idxmax())


def latency_table(dynamic: dict[str, SweepResult], static: SweepResult, settings: list[str], seed: int,
                  inputs: int, threads: int, rounds: int) -> pd.DataFrame:  # fmt: skip
    """Batch-1 latency of dense, masked, skipping and the matched static model for each trained `settings` run,
    timed on the first `inputs` test inputs (gating.timing.compare)."""
    from workbench.gating import timing

    stat = {round(r.target["value"], 3): r for r in static.records if r.role == "main" and r.seed == seed}
    rows = []
    for setting in settings:
        result = next(res for res in dynamic.values() if setting in set(labelled(res.results)["setting"]))
        rec = next(r for r in result.records if r.role == "main" and r.seed == seed
                   and label(r.method, r.target["value"]) == setting)  # fmt: skip
        means = setting_means(result.results).set_index("setting")
        match = stat[round(means.loc[setting, "flops_mean_reduction"], 3)]
        x = result.bundle.test.tensors[0][:inputs]
        dense, gated = result.dense_model(seed), result.model(rec.run_id, seed)
        pruned = static.model(match.run_id, seed)
        for row in timing.compare(dense, gated, x, pruned, threads=threads, rounds=rounds):
            rows.append({"setting": setting, **row})
    return pd.DataFrame(rows)


def activity_summary(activity: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per setting and gated layer: channels always on, never on, and the mean share of inputs a channel is on for."""
    frame = pd.concat(activity, names=["setting"]).reset_index(level=0)
    return (
        frame.groupby(["setting", "layer"], sort=False)["on"]
        .agg(channels="count", always_on=lambda v: int((v == 1).sum()), never_on=lambda v: int((v == 0).sum()),
             mean="mean")
        .reset_index()
    )  # fmt: skip


def conclusions(matched: pd.DataFrame, table: pd.DataFrame, activity: pd.DataFrame, latency: pd.DataFrame,
                bench: pd.DataFrame) -> list[str]:  # fmt: skip
    """Sentences computed from the notebook's tables."""
    lines = []
    for _, r in matched.iterrows():
        diff, noise = r["dynamic_minus_static"], max(r["dynamic_sd"], r["static_sd"])
        where = "level with" if diff == 0 else f"{abs(diff) * 100:.2f} points {'above' if diff > 0 else 'below'}"
        within = " (within one sd over seeds)" if diff != 0 and abs(diff) <= noise else ""
        lines.append(
            f"{r['setting']}: {r['mean_flops_reduction']:.2f}x fewer FLOPs on average, top-1 {r['dynamic_top1']:.4f}, "
            f"{where} static L1 at the same mean FLOPs{within} ({r['static_top1']:.4f}; dense {r['dense_top1']:.4f})."
        )
    spread = table.groupby("setting")["reduction"].agg(["min", "median", "max"])
    for setting, r in spread.iterrows():
        if r["max"] / r["min"] > 1.0001:
            lines.append(f"{setting}: the inputs' FLOPs reduction ranges from {r['min']:.2f}x to {r['max']:.2f}x "
                         f"(median {r['median']:.2f}x): the cost follows the input.")  # fmt: skip
        else:
            lines.append(f"{setting}: every input costs the same ({r['median']:.2f}x fewer FLOPs): winner-take-all "
                         f"fixes how many channels run, only which ones follow the input.")  # fmt: skip
    for setting, rows in activity.groupby("setting", sort=False):
        fixed = int(rows["always_on"].sum() + rows["never_on"].sum())
        lines.append(f"{setting}: {fixed} of {int(rows['channels'].sum())} gated channels are always on or never on "
                     f"over the test inputs; the rest switch with the input.")  # fmt: skip
    for name, frame in (("trained models", latency), ("the larger model", bench)):
        for key, rows in frame.groupby("setting" if "setting" in frame else "density", sort=False):
            by = rows.set_index("execution")
            text = ", ".join(
                f"{e} {by.loc[e, 'speedup']:.2f}x (efficiency {by.loc[e, 'efficiency']:.2f})"
                for e in ("masked", "skip", "static")
                if e in by.index
            )
            what = key if name == "trained models" else f"{bench['model'].iloc[0]} d={key:g}"
            lines.append(f"Batch-1 speed on {name}, {what}, against dense: {text}; the gates claim "
                         f"{by.loc['skip', 'flops_speedup']:.2f}x fewer FLOPs.")  # fmt: skip
    return lines
