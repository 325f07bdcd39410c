"""Our runs beside the published numbers of `literature/results.csv`: the papers' delta top-1 at their FLOPs reduction,
ours at the nearest target, and whether the published ranking survives one setup (Kendall's tau).

A method of ours matches rows of its paper (the method's bib key) whose method label fits a pattern (`LABELS`: a paper
reports several variants; only the one we implement counts). Of those with a delta top-1 and a FLOPs reduction on a
setting, the method's own report is preferred; a method with none there takes a reproduction by other authors, and
the table says which it is.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from workbench.compare.stats import kendall
from workbench.literature.results import load_results, with_derived
from workbench.methods.base import METHODS

LABELS = {
    "l1": r"^(L1\b|ResNet-56-pruned|VGG-16-pruned|PFEC)",
    "l2": r"^L2\b",
    "fpgm": r"^FPGM(?!-mix)",
    "hrank": r"^HRank(-\d)?$",
    "greg": r"^GReg-1",
    "filter_merge": r"^C-SGD",
    "thinet": r"^ThiNet",
    "apoz": r"^(APoZ|Network Trimming)",
    "taylor_filter": r"^Taylor",
    "eagleeye": r"^EagleEye",
    "amc": r"^AMC",
    "nsga2": r"^ABCPruner",
    "slimming": r"^(NS|Network Slimming|Slimming)",
    "gradual_magnitude": r"^(GMP|Gradual|Zhu)",
}
"""Our method -> a regular expression for its rows' `method` labels in results.csv (matched at the start)."""
NOT_FINETUNED = re.compile(r"without fine-tuning|w/o fine-tuning|no fine-tuning", re.IGNORECASE)
"""Rows measured right after pruning are left out: every run of ours is fine-tuned."""


def published_rows(methods, setting: str, literature: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every row of `setting` (e.g. 'resnet56/cifar10') reporting one of `methods` with a delta top-1 and a FLOPs
    reduction, with `ours` (our method's name) and `own` (the method's paper reports it itself)."""
    frame = with_derived(load_results() if literature is None else literature)
    frame = frame[(frame["setting"] == setting) & frame["delta_top1"].notna() & frame["flops_reduction_pct"].notna()]
    out = []
    for method in methods:
        if method not in LABELS:
            continue
        key = METHODS.get(method).cite
        pattern = re.compile(LABELS[method])
        fits = frame["method"].map(lambda m, p=pattern: bool(p.match(str(m))) and not NOT_FINETUNED.search(str(m)))
        rows = frame[(frame["key"] == key) & fits]
        out.append(rows.assign(ours=method, own=rows["reported_in"].fillna("").eq("")))
    if not out:
        return pd.DataFrame()
    return pd.concat(out, ignore_index=True)


def reproduction(best: pd.DataFrame, setting: str, literature: pd.DataFrame | None = None) -> pd.DataFrame:
    """For each method of ours with a published row on `setting`: the paper's delta top-1 at its FLOPs reduction (its
    own report first; of those, the one nearest to one of our FLOPs targets) beside ours at the nearest target."""
    ours = best[best["target_kind"] == "flops_reduction"]
    rows = published_rows(sorted(ours["method"].unique()), setting, literature)
    out = []
    for method, mine in ours.groupby("method", sort=True):
        paper = rows[rows["ours"] == method] if not rows.empty else rows
        if paper.empty:
            continue
        our_pct = 100 * (1 - 1 / mine["target_value"].astype(float).to_numpy())
        gap = paper["flops_reduction_pct"].map(lambda pct, t=our_pct: float(np.abs(t - pct).min()))
        pick = paper.assign(distance=gap, not_own=~paper["own"]).sort_values(["not_own", "distance"]).iloc[0]
        row = mine.iloc[int(np.abs(our_pct - pick["flops_reduction_pct"]).argmin())]
        out.append({
            "setting": setting, "method": method, "target_value": row["target_value"], "paper": pick["key"],
            "paper_label": pick["method"], "reported_by": "own paper" if pick["own"] else pick["reported_in"],
            "paper_flops_reduction_pct": pick["flops_reduction_pct"], "paper_delta": pick["delta_top1"],
            "our_flops_reduction_pct": 100 * (1 - 1 / row["flops_x"]), "our_delta": row["delta"],
            "our_delta_ci": row["delta_ci"], "result_id": pick["result_id"],
        })  # fmt: skip
    return pd.DataFrame(out)


def rank_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting: Kendall's tau between the published deltas and ours over the methods both have."""
    out = []
    for setting, group in table.groupby("setting", sort=True):
        tau, p, n = kendall(group.set_index("method")["paper_delta"], group.set_index("method")["our_delta"])
        out.append({"setting": setting, "methods": n, "kendall_tau": tau, "p": p,
                    "published_order": ", ".join(group.sort_values("paper_delta", ascending=False)["method"]),
                    "our_order": ", ".join(group.sort_values("our_delta", ascending=False)["method"])})  # fmt: skip
    return pd.DataFrame(out).replace({np.nan: None}) if out else pd.DataFrame()


def reproduction_tables(best: pd.DataFrame, settings) -> pd.DataFrame:
    """`reproduction` over several reference settings, one table."""
    literature = load_results()  # read once for every setting
    tables = [reproduction(best, s, literature) for s in settings]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
