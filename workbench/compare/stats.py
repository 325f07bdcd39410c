"""The comparison's numbers: one row per run, means with 95% confidence intervals over seeds, the Pareto front across
families, rankings with paired tests, and how the fine-tuning learning rate moves a ranking.

Accuracy is compared as delta top-1 in percentage points (pruned minus the dense model of the same seed), the unit
of the published tables. Reductions are 'x-fold': FLOPs as each kind executes them (structured: the smaller network;
unstructured: nonzero multiply-adds, what a sparse kernel could skip; dynamic: the mean over test inputs of what the
gates execute) and weights as 1 / (1 - sparsity) over the conv/linear weights.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from workbench.methods.base import METHODS
from workbench.reporting import pareto_front

TEST = "paired t-test over seeds (scipy.stats.ttest_rel, two-sided)"
ALPHA = 0.05
GROUP = ["kind", "family", "method", "target_kind", "target_value", "finetune_lr"]
STRUCTURE = {
    "structured": "structured", "dynamic": "dynamic", "unstructured": "unstructured", "lottery": "unstructured"
}  # fmt: skip
"""How each kind's pruned network is executed: lottery tickets are masks."""


def points(records: pd.DataFrame, planned: pd.DataFrame) -> pd.DataFrame:
    """The planned runs' final rows (the last level of iterative ones; controls kept, marked by `role`) with
    kind, fine-tuning LR, delta top-1 (points) and the x-fold reductions. `planned` has run_id, kind, finetune_lr."""
    rows = records.merge(planned, on="run_id", how="inner")
    final = rows["level"].isna() | (rows["level"] == rows["levels"])
    rows = rows[final].copy()
    rows["delta"] = 100 * (rows["top1"] - rows["dense_top1"])
    flops = rows["flops_reduction"].where(rows["kind"] == "structured", rows["effective_flops_reduction"])
    if "flops_mean_reduction" in rows:
        flops = flops.where(rows["kind"] != "dynamic", rows["flops_mean_reduction"])
    rows["flops_x"] = flops.astype(float)
    rows["params_x"] = 1 / (1 - rows["sparsity"].astype(float))
    rows["structure"] = np.where(rows["role"] == "masked_twin", "unstructured", rows["kind"].map(STRUCTURE))
    rows["reached"] = reached(rows)
    return rows.reset_index(drop=True)


def reached(rows: pd.DataFrame, tolerance: float = 0.05) -> pd.Series:
    """Whether each run reached its target: FLOPs reduction at least (1 - tolerance) x the target (dynamic methods:
    their mean executed FLOPs), sparsity at least the target minus 0.01."""
    flops = rows["flops_x"] >= (1 - tolerance) * rows["target_value"].astype(float)
    sparse = rows["sparsity"].astype(float) >= rows["target_value"].astype(float) - 0.01
    return flops.where(rows["target_kind"] == "flops_reduction", sparse).astype(bool)


def ci95(values) -> float:
    """Half-width of the 95% confidence interval of the mean (Student's t); NaN for fewer than two values."""
    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return float("nan")
    return float(sps.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))


def summary(points_: pd.DataFrame, role: str = "main") -> pd.DataFrame:
    """Per method, hyperparameter setting, target and fine-tuning LR: mean delta top-1 with its 95% CI, the seeds,
    and the mean reductions and measured speedup."""
    rows = points_[points_["role"] == role]
    table = rows.groupby([*GROUP, "hparams"], sort=True).agg(
        delta=("delta", "mean"), delta_ci=("delta", ci95), seeds=("seed", "nunique"), top1=("top1", "mean"),
        dense_top1=("dense_top1", "mean"), flops_x=("flops_x", "mean"), params_x=("params_x", "mean"),
        speedup=("speedup", "mean"), speedup_ci=("speedup", ci95), reached=("reached", "all"),
    )  # fmt: skip
    return table.reset_index()


def best_settings(summary_: pd.DataFrame) -> pd.DataFrame:
    """One row per method, target and LR: of its hyperparameter settings that reached the target on every seed, the
    one with the highest mean delta top-1 (a method none of whose settings reached it is left out: `missed`)."""
    ok = summary_[summary_["reached"]]
    best = ok.loc[ok.groupby(GROUP, sort=True)["delta"].idxmax()]
    return best.reset_index(drop=True)


def missed(summary_: pd.DataFrame) -> pd.DataFrame:
    """The methods, targets and LRs where no setting reached the target on every seed, with what they reached."""
    keys = summary_.groupby(GROUP, sort=True)["reached"].any()
    gone = keys[~keys].reset_index()[GROUP]
    columns = [*GROUP, "flops_x", "params_x", "delta", "seeds"]
    return gone.merge(summary_, on=GROUP)[columns].reset_index(drop=True)


def key_figures(points_: pd.DataFrame) -> pd.DataFrame:
    """What does not depend on training noise, per method and target at the smallest LR: whether every seed reached the
    target, and the weight reduction of methods whose size the target fixes (uniform channel removal, masks)."""
    rows = points_[(points_["role"] == "main") & (points_["finetune_lr"] == points_["finetune_lr"].min())]
    table = rows.groupby(["kind", "method", "target_kind", "target_value"], sort=True).agg(
        seeds=("seed", "nunique"), reached=("reached", "all"), params_x_min=("params_x", "min"),
        params_x_max=("params_x", "max"),
    ).reset_index()  # fmt: skip
    searched = table["method"].map(lambda m: METHODS.info(m)["family"] == "automated")
    fixed = ~searched & (table["kind"] != "dynamic")
    for column in ("params_x_min", "params_x_max"):
        table[column] = table[column].round(3).where(fixed)
    return table


def pareto(best: pd.DataFrame, x: str) -> pd.DataFrame:
    """`best` with `on_front`: not dominated by any method of any family in (x larger, delta larger)."""
    out = best.copy()
    out["on_front"] = pareto_front(out, x, "delta").to_numpy()
    return out


def paired_p(a: pd.Series, b: pd.Series) -> float:
    """p of the paired t-test between two methods' delta top-1, paired by seed (NaN with fewer than two pairs,
    1.0 when the differences are all equal to zero)."""
    both = pd.concat([a, b], axis=1, join="inner").dropna()
    if len(both) < 2:
        return float("nan")
    diff = both.iloc[:, 0] - both.iloc[:, 1]
    if np.allclose(diff, diff.iloc[0]):
        return 1.0 if np.isclose(diff.iloc[0], 0) else 0.0
    return float(sps.ttest_rel(both.iloc[:, 0], both.iloc[:, 1]).pvalue)


def ranking(points_: pd.DataFrame, best: pd.DataFrame, baselines: dict[str, str]) -> pd.DataFrame:
    """For each target and LR, the methods (their best settings) ordered by mean delta top-1, with the CI, the
    paired test against the target kind's random baseline and against the best method, and whether each differs
    at ALPHA."""
    mains = points_[points_["role"] == "main"]
    out = []
    for (kind, value, lr), group in best.groupby(["target_kind", "target_value", "finetune_lr"], sort=True):
        group = group.sort_values("delta", ascending=False).reset_index(drop=True)
        per_seed = {
            row.method: mains[(mains["method"] == row.method) & (mains["target_kind"] == kind)
                              & (mains["target_value"] == value) & (mains["finetune_lr"] == lr)
                              & (mains["hparams"] == row.hparams)].set_index("seed")["delta"]
            for row in group.itertuples()
        }  # fmt: skip
        leader, baseline = group["method"].iloc[0], baselines.get(kind)
        deltas = group.set_index("method")["delta"]
        for rank, row in enumerate(group.itertuples(), start=1):
            p_base = np.nan
            if baseline in per_seed and row.method != baseline:
                p_base = paired_p(per_seed[row.method], per_seed[baseline])
            p_best = np.nan if row.method == leader else paired_p(per_seed[row.method], per_seed[leader])
            out.append({
                "target_kind": kind, "target_value": value, "finetune_lr": lr, "rank": rank, "method": row.method,
                "family": row.family, "delta": row.delta, "delta_ci": row.delta_ci, "seeds": row.seeds,
                "flops_x": row.flops_x, "speedup": row.speedup, "p_vs_random": p_base, "p_vs_best": p_best,
                "vs_random": _verdict(p_base, row.delta - deltas.get(baseline, np.nan)),
                "vs_best": _verdict(p_best, row.delta - deltas[leader]),
            })  # fmt: skip
    return pd.DataFrame(out)


def _verdict(p: float, difference: float) -> str:
    """'better' or 'worse' where p < ALPHA (by the sign of the mean difference), 'not shown to differ' otherwise,
    '' where there is no test (the method itself, or fewer than two seeds)."""
    if pd.isna(p):
        return ""
    if p < ALPHA:
        return "better" if difference > 0 else "worse"
    return "not shown to differ"


def kendall(a: pd.Series, b: pd.Series) -> tuple[float, float, int]:
    """Kendall's tau-b between two scores of the same methods (index), its p-value and how many methods both have."""
    both = pd.concat([a, b], axis=1, join="inner").dropna()
    if len(both) < 2:
        return float("nan"), float("nan"), len(both)
    result = sps.kendalltau(both.iloc[:, 0], both.iloc[:, 1])
    return float(result.statistic), float(result.pvalue), len(both)


def lr_effect(best: pd.DataFrame, main_lr: float) -> pd.DataFrame:
    """Per target and each other fine-tuning LR: Kendall's tau between the ranking at `main_lr` and at that LR,
    the leader at each, and the largest change of any method's delta."""
    out = []
    for (kind, value), group in best.groupby(["target_kind", "target_value"], sort=True):
        at = {lr: g.set_index("method")["delta"] for lr, g in group.groupby("finetune_lr")}
        if main_lr not in at:
            continue
        for lr, deltas in at.items():
            if lr == main_lr:
                continue
            tau, p, n = kendall(at[main_lr], deltas)
            change = (deltas - at[main_lr]).dropna()
            out.append({
                "target_kind": kind, "target_value": value, "main_lr": main_lr, "other_lr": lr, "methods": n,
                "kendall_tau": tau, "p": p, "leader_main": at[main_lr].idxmax(), "leader_other": deltas.idxmax(),
                "largest_change": change.abs().max(), "most_changed": change.abs().idxmax(),
            })  # fmt: skip
    return pd.DataFrame(out)


def equal_size(points_: pd.DataFrame) -> pd.DataFrame:
    """Each structured method with a masked twin beside the twin (the same conv/linear weights kept, as masks):
    mean delta top-1, weight reduction and measured speedup per target and LR."""
    twins = points_[points_["role"] == "masked_twin"]
    if twins.empty:
        return pd.DataFrame()
    mains = points_[(points_["role"] == "main") & points_["method"].isin(twins["method"].unique())]
    both = pd.concat([mains, twins])
    keys = ["method", "target_value", "finetune_lr", "structure"]
    return both.groupby(keys, sort=True).agg(
        delta=("delta", "mean"), delta_ci=("delta", ci95), params_x=("params_x", "mean"), flops_x=("flops_x", "mean"),
        speedup=("speedup", "mean"), seeds=("seed", "nunique"),
    ).reset_index()  # fmt: skip


def speed_by_family(points_: pd.DataFrame) -> pd.DataFrame:
    """Per family and structure: median FLOPs reduction, median measured speedup and their ratio (efficiency), over
    the main runs whose latency was measured."""
    rows = points_[(points_["role"] == "main") & points_["speedup"].notna()]
    table = rows.groupby(["family", "structure"], sort=True).agg(
        runs=("run_id", "count"), flops_x=("flops_x", "median"), speedup=("speedup", "median"),
    ).reset_index()  # fmt: skip
    table["efficiency"] = table["speedup"] / table["flops_x"]
    return table


def headline(best: pd.DataFrame, main_lr: float) -> pd.DataFrame:
    """At the main LR and for each target: the best method of every family, ordered by mean delta top-1."""
    rows = best[best["finetune_lr"] == main_lr]
    top = rows.loc[rows.groupby(["target_kind", "target_value", "family"])["delta"].idxmax()]
    top = top.sort_values(["target_kind", "target_value", "delta"], ascending=[True, True, False])
    columns = ["target_kind", "target_value", "family", "method", "delta", "delta_ci", "seeds", "flops_x", "params_x",
               "speedup"]  # fmt: skip
    return top[columns].reset_index(drop=True)


def kind_of(method: str) -> str:
    """structured, dynamic, unstructured or lottery: how a method reduces the network."""
    family = METHODS.info(method)["family"]
    if family == "lottery-ticket":
        return "lottery"
    if family == "dynamic":
        return "dynamic"
    return "structured" if METHODS.get(method).structural else "unstructured"
