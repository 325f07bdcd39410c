"""Notebook 07's experiments and analysis: the searchers against uniform allocation at the same budgets.

The grids are defined once here (the notebook and its parameter check run the same ones); every table, figure and
sentence is computed from the records, whose `search` field holds each search's trials.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.records import RunRecord
from workbench.targets import make_target

NOTEBOOK = "07-automated"
SEARCHERS = ("eagleeye", "nsga2", "netadapt", "amc")
BASELINE = "l1"
LABELS = {"l1": "uniform (L1)", "eagleeye": "EagleEye", "nsga2": "NSGA-II", "netadapt": "NetAdapt", "amc": "AMC"}


def grids(
    *,
    dataset: str,
    model: str,
    seeds,
    epochs: int,
    batch_size: int,
    lr: float,
    flops_reductions,
    latency_fractions,
    latency_batch_size: int,
    max_ratio: float,
    eagleeye_candidates: int,
    eagleeye_correlation: int,
    eagleeye_correlation_steps: int,
    nsga2_population: int,
    nsga2_generations: int,
    netadapt_iterations: int,
    netadapt_short_steps: int,
    amc_episodes: int,
    amc_warmup: int,
    calibration_size: int,
    finetune_epochs: int,
    finetune_lr: float,
) -> dict[str, dict[str, Any]]:
    """The FLOPs sweep and, if latency fractions are given, the latency sweep (budgets as fractions of the dense
    model's latency on this machine): every searcher and uniform L1."""
    hparams = {
        "eagleeye": {"candidates": eagleeye_candidates, "correlation": eagleeye_correlation,
                     "correlation_steps": eagleeye_correlation_steps, "correlation_lr": finetune_lr},
        "nsga2": {"population": nsga2_population, "generations": nsga2_generations},
        "netadapt": {"iterations": netadapt_iterations, "short_steps": netadapt_short_steps,
                     "short_lr": finetune_lr},
        "amc": {"episodes": amc_episodes, "warmup": amc_warmup},
        "*": {"max_ratio": max_ratio, "round_to": 0},
    }  # fmt: skip
    common = dict(
        methods=[BASELINE, *SEARCHERS], seeds=seeds, hparams=hparams, dataset=dataset, model=model, epochs=epochs,
        batch_size=batch_size, lr=lr, calibration_size=calibration_size, finetune_epochs=finetune_epochs,
        finetune_lr=finetune_lr, measure_latency=True, latency_batch_size=latency_batch_size,
    )  # fmt: skip
    out = {"flops": {**common, "targets": list(flops_reductions), "target_kind": "flops_reduction"}}
    if latency_fractions:
        budgets = [make_target("latency_fraction", float(f), batch_size=latency_batch_size) for f in latency_fractions]
        no_correlation = {**hparams, "eagleeye": {**hparams["eagleeye"], "correlation": 0}}  # the figure: FLOPs runs
        out["latency"] = {**common, "hparams": no_correlation, "targets": budgets}
    return out


def labelled(results: pd.DataFrame) -> pd.DataFrame:
    out = results.copy()
    out["searcher"] = out["method"].map(LABELS)
    return out


def search_of(rec: RunRecord) -> dict:
    return rec.metrics.get("search") or {}


def key_figures(results: pd.DataFrame) -> pd.DataFrame:
    """Deterministic figures: per target and method, the runs and whether every run met its budget: FLOPs counted
    on the pruned model; a latency budget as the lookup table predicts the searcher's choice ("timed" for uniform L1,
    which times pruned copies while it prunes)."""
    frame = labelled(results)
    if "search_within_budget" not in frame:
        frame["search_within_budget"] = np.nan
    flops = frame["target_kind"] == "flops_reduction"
    frame["met"] = np.where(flops, frame["flops_reduction"] >= frame["target_value"] * (1 - 1e-9),
                            frame["search_within_budget"])  # fmt: skip
    table = frame.groupby(["target_kind", "target_value", "searcher"], sort=True).agg(
        runs=("seed", "count"), met=("met", lambda m: "timed" if m.isna().all() else bool(m.astype(bool).all()))
    )
    return table.reset_index().rename(columns={"met": "budget_met"})


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per target and method: test top-1 (mean, sd over seeds), FLOPs reduction, measured latency and speedup,
    search wall time and candidates evaluated (means)."""
    frame = labelled(results)
    for column in ("search_seconds", "search_candidates"):
        if column not in frame:
            frame[column] = np.nan
    frame.loc[frame["method"] == BASELINE, ["search_seconds", "search_candidates"]] = 0.0
    table = frame.groupby(["target_kind", "target_value", "searcher"], sort=True).agg(
        top1=("top1", "mean"), top1_sd=("top1", "std"), flops_reduction=("flops_reduction", "mean"),
        latency_ms=("latency_ms", "mean"), speedup=("speedup", "mean"), search_s=("search_seconds", "mean"),
        candidates=("search_candidates", "mean"), seeds=("seed", "count"))  # fmt: skip
    return table.reset_index()


def versus_uniform(results: pd.DataFrame) -> pd.DataFrame:
    """Each searcher's test top-1 minus uniform L1's at the same target and seed: mean, sd, and seeds won."""
    frame = labelled(results)
    keys = ["target_kind", "target_value", "seed"]
    base = frame[frame["method"] == BASELINE].set_index(keys)["top1"]
    rows = []
    for (kind, value, method), group in frame[frame["method"] != BASELINE].groupby(
            ["target_kind", "target_value", "method"], sort=True):  # fmt: skip
        diff = group.set_index(keys)["top1"] - base.reindex(group.set_index(keys).index)
        rows.append({"target_kind": kind, "target_value": value, "searcher": LABELS[method],
                     "delta_top1": diff.mean(), "delta_sd": diff.std(), "seeds_better": int((diff > 0).sum()),
                     "seeds_worse": int((diff < 0).sum()), "seeds": int(diff.notna().sum())})  # fmt: skip
    return pd.DataFrame(rows)


def widths(records: list[RunRecord], target_value: float, seed: int) -> pd.DataFrame:
    """Kept fraction of every group's channels per method at one FLOPs target and seed (uniform L1 from its layers,
    read at each group's root layer), one row per (method, group)."""
    chosen = [r for r in records if r.role == "main" and r.seed == seed and r.target["kind"] == "flops_reduction"
              and r.target["value"] == target_value]  # fmt: skip
    searched = next(search_of(r) for r in chosen if search_of(r))
    groups, units = searched["groups"], searched["units"]
    rows = []
    for rec in chosen:
        search = search_of(rec)
        if search:
            kept = search["chosen"]["kept"]
        else:
            out = {layer["layer"]: layer["shape"][0] for layer in rec.layers}
            kept = [out.get(g, np.nan) for g in groups]
        rows += [{"searcher": LABELS[rec.method], "group": g, "order": i, "kept": k / u}
                 for i, (g, k, u) in enumerate(zip(groups, kept, units, strict=True))]  # fmt: skip
    return pd.DataFrame(rows)


def trials(records: list[RunRecord]) -> pd.DataFrame:
    """Every candidate every search evaluated: searcher, seed, target, trial, proxy accuracy, cost fraction."""
    rows = []
    for rec in records:
        search = search_of(rec)
        for t in search.get("trials", []):
            rows.append({"searcher": LABELS[rec.method], "seed": rec.seed, "target_kind": rec.target["kind"],
                         "target_value": rec.target["value"], "trial": t["trial"], "proxy_top1": t["proxy_top1"],
                         "cost_fraction": t["candidate"]["cost"] / search["budget"]["dense"],
                         "flops_reduction": rec.metrics["dense_flops"] / t["candidate"]["flops"]})  # fmt: skip
    return pd.DataFrame(rows)


def correlation(records: list[RunRecord]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """EagleEye's figure: the candidates fine-tuned briefly, their accuracy plain, after adaptive BN and after the
    fine-tuning (one row each), and per search the Spearman and Pearson correlation of each proxy with it."""
    rows, stats = [], []
    for rec in records:
        found = search_of(rec).get("correlation")
        if not found:
            continue
        frame = pd.DataFrame(found).assign(seed=rec.seed, target_value=rec.target["value"],
                                           target_kind=rec.target["kind"])  # fmt: skip
        rows.append(frame)
        for proxy in ("plain_top1", "proxy_top1"):
            stats.append({"seed": rec.seed, "target_kind": rec.target["kind"], "target_value": rec.target["value"],
                          "proxy": "adaptive BN" if proxy == "proxy_top1" else "plain",
                          "spearman": frame[proxy].corr(frame["finetuned_top1"], method="spearman"),
                          "pearson": frame[proxy].corr(frame["finetuned_top1"]), "candidates": len(frame)})  # fmt: skip
    return (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()), pd.DataFrame(stats)


def pareto(records: list[RunRecord]) -> pd.DataFrame:
    """The NSGA-II studies' candidates with their front flags: proxy accuracy against cost fraction."""
    rows = []
    for rec in records:
        search = search_of(rec)
        if rec.method != "nsga2" or not search:
            continue
        front = set(search.get("pareto", []))
        for t in search["trials"]:
            rows.append({"seed": rec.seed, "target_kind": rec.target["kind"], "target_value": rec.target["value"],
                         "trial": t["trial"], "proxy_top1": t["proxy_top1"],
                         "cost_fraction": t["candidate"]["cost"] / search["budget"]["dense"],
                         "within_budget": t["candidate"]["cost"] <= search["budget"]["limit"] * (1 + 1e-12),
                         "on_front": t["trial"] in front})  # fmt: skip
    return pd.DataFrame(rows)


def lookup_table_check(records: list[RunRecord]) -> pd.DataFrame:
    """Latency-budget runs of the searchers: the lookup table's prediction for the chosen network against its
    latency measured by the pipeline at the same batch size, both as fractions of the dense model's (the table's
    dense entry; the dense model timed in alternating rounds beside it), since a run's absolute timings move with
    the machine's load (parallel runs) and their ratio much less. `error` = predicted / measured fraction - 1."""
    rows = []
    for rec in records:
        search = search_of(rec)
        if not rec.target["kind"].startswith("latency") or not search:
            continue
        m = rec.metrics
        rows.append({"searcher": LABELS[rec.method], "seed": rec.seed, "fraction": rec.target["value"],
                     "budget_ms": search["budget"]["limit"],
                     "predicted_ms": search["chosen"]["cost"], "measured_ms": m.get("latency_ms"),
                     "dense_measured_ms": m.get("latency_ms_dense"),
                     "dense_table_ms": search["budget"]["dense"]})  # fmt: skip
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["predicted_fraction"] = frame["predicted_ms"] / frame["dense_table_ms"]
        frame["measured_fraction"] = frame["measured_ms"] / frame["dense_measured_ms"]
        frame["error"] = frame["predicted_fraction"] / frame["measured_fraction"] - 1
        frame["within_budget"] = frame["measured_fraction"] <= frame["fraction"]
    return frame


def conclusions(summary_table: pd.DataFrame, versus: pd.DataFrame, correlations: pd.DataFrame,
                table_check: pd.DataFrame) -> list[str]:  # fmt: skip
    """Sentences computed from the tables above."""
    lines = []
    for (kind, value), rows in versus.groupby(["target_kind", "target_value"], sort=True):
        best = rows.loc[rows["delta_top1"].idxmax()]
        unit = "x FLOPs" if kind == "flops_reduction" else "x dense latency"
        beat = rows[rows["delta_top1"] > 1e-9]["searcher"].tolist()
        lines.append(
            f"At {value:g}{unit}, {len(beat)} of {len(rows)} searchers beat uniform L1 on mean test top-1"
            f"{' (' + ', '.join(beat) + ')' if beat else ''}; the best, {best['searcher']}, by "
            f"{best['delta_top1'] * 100:+.2f} points (better on {best['seeds_better']} of {best['seeds']} seeds)."
        )
    costly = summary_table[summary_table["search_s"] > 0]
    if not costly.empty:
        per = costly.groupby("searcher")["search_s"].mean().sort_values()
        lines.append("Search wall time per run (mean): " + ", ".join(f"{n} {s:.1f} s" for n, s in per.items())
                     + "; uniform L1 searches nothing.")  # fmt: skip
    if not correlations.empty:
        mean = correlations.groupby("proxy")["spearman"].mean()
        lines.append(
            f"EagleEye's proxy: Spearman correlation with accuracy after a short fine-tuning "
            f"{mean.get('adaptive BN', np.nan):.2f} with adaptive BN, {mean.get('plain', np.nan):.2f} without "
            "(mean over searches)."
        )
    if not table_check.empty:
        lines.append(
            f"Lookup table vs measured latency of the chosen networks, as fractions of the dense latency: median error "
            f"{table_check['error'].median() * 100:+.1f}% (range {table_check['error'].min() * 100:+.1f}% to "
            f"{table_check['error'].max() * 100:+.1f}%); {int(table_check['within_budget'].sum())} of "
            f"{len(table_check)} within their budget as a fraction of the dense latency measured beside them."
        )
    return lines
