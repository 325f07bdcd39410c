"""Sentences of notebook 09, each computed from the comparison's own tables (never typed by hand)."""

from __future__ import annotations

import pandas as pd

from workbench.compare.setup import EXTRA_COST
from workbench.compare.stats import ALPHA, TEST


def fair_setup(points: pd.DataFrame, recipe: dict) -> list[str]:
    """What every method shared, checked on the records: one dense model per seed, one fine-tuning budget."""
    mains = points[points["role"] == "main"]
    per_seed = mains.groupby("seed")["dense_top1"].agg(["nunique", "first", "size"])
    shared = bool((per_seed["nunique"] == 1).all())
    dense = ", ".join(f"seed {s}: {100 * r['first']:.2f}% ({int(r['size'])} runs)" for s, r in per_seed.iterrows())
    train, data = recipe["train"], recipe["data"]
    lines = [
        f"Data {data['dataset']}, model {recipe['model']['name']}, dense training {train['epochs']} epochs at "
        f"learning rate {train['lr']:g} (cosine), batch {data['batch_size']}.",
        f"One dense model per seed shared by every run of that seed: {'yes' if shared else 'NO'} "
        f"(dense top-1 {dense}).",
        f"Fine-tuning: {recipe['finetune']['epochs']} epochs, cosine from each learning rate of "
        f"{', '.join(f'{lr:g}' for lr in sorted(points['finetune_lr'].unique()))}, for every method.",
        f"Calibration data for data-dependent criteria: {recipe['calibration_size']} training examples.",
    ]
    present = sorted(set(mains["method"]) & set(EXTRA_COST))
    lines += [f"What {m} adds by its own definition: {EXTRA_COST[m]}." for m in present]
    return lines


def findings(ranking: pd.DataFrame, lr_effect: pd.DataFrame, agreement: pd.DataFrame, equal: pd.DataFrame,
             speed: pd.DataFrame, missed: pd.DataFrame, main_lr: float) -> list[str]:  # fmt: skip
    """What the comparison found: leaders and their tests, the LR's effect, published rank agreement, structure
    against masks, FLOPs against measured speed, and targets some methods missed."""
    lines = []
    main = ranking[ranking["finetune_lr"] == main_lr]
    for (kind, value), group in main.groupby(["target_kind", "target_value"], sort=True):
        lead = group.iloc[0]
        tied = group[group["vs_best"] == "not shown to differ"]["method"].tolist()
        better = group[group["vs_random"] == "better"]["method"].tolist()
        worse = group[group["vs_random"] == "worse"]["method"].tolist()
        lines.append(
            f"{kind} {value:g}: {lead['method']} ({lead['family']}) leads with {lead['delta']:+.2f} ± "
            f"{lead['delta_ci']:.2f} points over {int(lead['seeds'])} seeds; not shown to differ from it at "
            f"p < {ALPHA:g} ({TEST}): {', '.join(tied) or 'none'}; better than the random baseline: "
            f"{', '.join(better) or 'none'}" + (f"; worse than it: {', '.join(worse)}." if worse else ".")
        )
    for row in lr_effect.itertuples():
        lines.append(
            f"{row.target_kind} {row.target_value:g}: fine-tuning at LR {row.other_lr:g} instead of {row.main_lr:g} "
            f"gives Kendall's tau {row.kendall_tau:.2f} between the two rankings of {row.methods} methods; leader "
            f"{row.leader_main} -> {row.leader_other}; the largest change is {row.most_changed} "
            f"({row.largest_change:.1f} points)."
        )
    for row in agreement.itertuples():
        lines.append(
            f"Published ({row.setting}) against ours: Kendall's tau {row.kendall_tau:.2f} over {row.methods} methods "
            f"(published order {row.published_order}; ours {row.our_order})."
        )
    for (method, _value, lr), group in equal.groupby(["method", "target_value", "finetune_lr"], sort=True):
        if set(group["structure"]) != {"structured", "unstructured"}:
            continue
        s = group.set_index("structure")
        lines.append(
            f"At equal conv/linear weights ({s.loc['structured', 'params_x']:.2f}x fewer), {method}'s channels keep "
            f"{s.loc['structured', 'delta']:+.2f} points and run {s.loc['structured', 'speedup']:.2f}x faster; its "
            f"masked twin keeps {s.loc['unstructured', 'delta']:+.2f} and runs {s.loc['unstructured', 'speedup']:.2f}x "
            f"(LR {lr:g})."
        )
    for structure, group in speed.groupby("structure", sort=True):
        lines.append(
            f"{structure}: median FLOPs reduction {group['flops_x'].median():.2f}x buys a median measured speedup of "
            f"{group['speedup'].median():.2f}x on this CPU (families: {', '.join(group['family'])})."
        )
    for row in missed.itertuples():
        lines.append(
            f"{row.method} did not reach {row.target_kind} {row.target_value:g} at LR {row.finetune_lr:g} (it reached "
            f"{row.flops_x:.2f}x FLOPs); it is left out of the rankings there."
        )
    return lines
