"""Notebook 08's experiments and their analysis: lottery tickets, their controls, stability, and the sanity checks
of pruning at initialisation. The grids are defined here once, so the notebook and its parameter check run the same.

Every table and sentence is computed from the sweeps' own records.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from workbench import checks
from workbench.methods.lottery import sparsity_after

NOTEBOOK = "08-lottery-tickets"
TICKET_CONTROLS = ("random_reinit", "random_mask", "instability")
PAI_CONTROLS = ("random_mask", "random_reinit", "inverted")
ROLE_NAMES = {
    "main": "ticket", "random_reinit": "random re-init", "random_mask": "random mask", "instability": "second copy",
}  # fmt: skip
SANITY_NAMES = {"main": "unmodified", "random_mask": "layer-wise shuffle", "random_reinit": "re-initialised",
                "inverted": "inverted scores"}  # fmt: skip
STABLE_BARRIER = 0.02  # Frankle et al. (2020) call a network stable when the error barrier is below 2%


def retraining_names(late_rewind_step: int) -> dict[str, str]:
    """Grid name -> how each IMP level is retrained."""
    return {
        "rewind-0": "IMP, weights rewound to init (k=0)",
        "rewind-k": f"IMP, weights rewound to step {late_rewind_step}",
        "lr-rewind": f"learning-rate rewinding to step {late_rewind_step}",
        "fine-tune": "fine-tuning",
    }


def grids(
    *,
    dataset: str,
    model: str,
    seeds,
    epochs: int,
    batch_size: int,
    lr: float,
    rate: float,
    levels: int,
    late_rewind_step: int,
    finetune_lr: float,
    scope: str,
    pai_methods,
    pai_sparsities,
    structured_method: str,
    channel_ratios,
    structured_finetune_epochs: int,
) -> dict[str, dict[str, Any]]:
    """The notebook's sweeps by name (keyword arguments of `workbench.runner.sweeps`), validated first."""
    target = sparsity_after(rate, levels)
    checks.integer("late_rewind_step", late_rewind_step, 1)
    common = dict(dataset=dataset, model=model, seeds=seeds, epochs=epochs, batch_size=batch_size, lr=lr)
    imp = dict(methods=["imp"], targets=[target], target_kind="sparsity", hparams={"imp": {"scope": scope}},
               pruning_steps=levels, **common)  # fmt: skip
    return {
        "rewind-0": {**imp, "rewind_step": 0, "controls": list(TICKET_CONTROLS)},
        "rewind-k": {**imp, "rewind_step": late_rewind_step, "controls": list(TICKET_CONTROLS)},
        "lr-rewind": {**imp, "rewind_step": late_rewind_step, "rewind": "lr"},
        "fine-tune": {**imp, "finetune_epochs": epochs, "finetune_lr": finetune_lr},
        "at-init": dict(methods=pai_methods, targets=pai_sparsities, target_kind="sparsity", prune_at="init",
                        controls=list(PAI_CONTROLS), **common),
        "structured": dict(methods=[structured_method], targets=channel_ratios, target_kind="channel_ratio",
                           finetune_epochs=structured_finetune_epochs, finetune_lr=finetune_lr, controls=["scratch"],
                           **common),
    }  # fmt: skip


def ticket_frame(runs: dict, names: dict[str, str]) -> pd.DataFrame:
    """One row per IMP run (every level, retraining and control), with `retraining`, `curve` and `remaining`."""
    frames = []
    for key, label in names.items():
        frame = runs[key].results.copy()
        frame["retraining"] = label
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["curve"] = [
        r if role == "main" else f"{r}: {ROLE_NAMES[role]}"
        for r, role in zip(out["retraining"], out["role"], strict=True)
    ]
    out["remaining"] = 1 - out["sparsity"]
    return out


def key_figures(tickets: pd.DataFrame) -> pd.DataFrame:
    """Deterministic figures: per retraining, role and level, the achieved sparsity (equal over seeds and roles of
    a level: every control keeps the ticket's per-layer counts) and the number of runs."""
    table = tickets.groupby(["retraining", "role", "level"], sort=True).agg(
        sparsity_min=("sparsity", "min"), sparsity_max=("sparsity", "max"), runs=("seed", "count")
    )
    return table.reset_index().round({"sparsity_min": 4, "sparsity_max": 4})


def levels_table(tickets: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy mean ± sd over seeds per curve and level, with the weights left."""
    table = tickets.groupby(["curve", "level"], sort=False).agg(
        sparsity=("sparsity", "mean"), remaining=("remaining", "mean"), top1_mean=("top1", "mean"),
        top1_sd=("top1", "std"), seeds=("seed", "nunique"),
    )  # fmt: skip
    return table.reset_index()


def dense_accuracy(tickets: pd.DataFrame) -> tuple[float, float]:
    """Mean and standard deviation over seeds of the dense networks' test accuracy."""
    per_seed = tickets.groupby("seed")["dense_top1"].first()
    return float(per_seed.mean()), float(per_seed.std()) if len(per_seed) > 1 else 0.0


def barrier_table(tickets: pd.DataFrame) -> pd.DataFrame:
    """The error barrier of the instability analysis, mean ± sd over seeds, per rewind point and level."""
    rows = tickets[tickets["role"] == "instability"]
    table = rows.groupby(["retraining", "level"], sort=False).agg(
        sparsity=("sparsity", "mean"), barrier_mean=("barrier", "mean"), barrier_sd=("barrier", "std"),
        seeds=("seed", "nunique"),
    )  # fmt: skip
    return table.reset_index()


def interpolation_frame(runs: dict, names: dict[str, str], level: int) -> pd.DataFrame:
    """Test error along the line between the two copies at `level`, one row per alpha per seed per rewind point."""
    rows = []
    for key in ("rewind-0", "rewind-k"):
        for rec in runs[key].records:
            if rec.role == "instability" and rec.level == level:
                for alpha, error in zip(rec.metrics["alphas"], rec.metrics["interpolation_error"], strict=True):
                    rows.append({"retraining": names[key], "seed": rec.seed, "alpha": alpha, "error": error})
    return pd.DataFrame(rows)


def sanity_table(at_init: pd.DataFrame) -> pd.DataFrame:
    """Accuracy after training of each pruning-at-initialisation method and its sanity-check variants (mean ± sd),
    with the change from the unmodified method."""
    frame = at_init.assign(variant=at_init["role"].map(SANITY_NAMES))
    table = (
        frame.groupby(["method", "target_value", "variant"], sort=True)
        .agg(top1_mean=("top1", "mean"), top1_sd=("top1", "std"), seeds=("seed", "nunique"))
        .reset_index()
    )
    base = table[table["variant"] == "unmodified"].set_index(["method", "target_value"])["top1_mean"]
    table["change"] = table["top1_mean"] - [
        base[(m, t)] for m, t in zip(table["method"], table["target_value"], strict=True)
    ]
    order = {name: i for i, name in enumerate(SANITY_NAMES.values())}
    return table.sort_values(["method", "target_value", "variant"], key=lambda c: c.map(order) if c.name == "variant"
                             else c).reset_index(drop=True)  # fmt: skip


def scratch_table(structured: pd.DataFrame) -> pd.DataFrame:
    """Structured pruning: the pruned network fine-tuned against the same architecture trained from scratch."""
    frame = structured.assign(training=structured["role"].map({"main": "pruned + fine-tuned", "scratch": "scratch"}))
    return frame.groupby(["target_value", "training"], sort=True).agg(
        params=("params", "mean"), flops_reduction=("flops_reduction", "mean"), top1_mean=("top1", "mean"),
        top1_sd=("top1", "std"), seeds=("seed", "nunique"),
    ).reset_index()  # fmt: skip


def _within(mean: float, sd: float, dense: float, dense_sd: float) -> bool:
    """True if `mean` is no more than one (pooled) standard deviation below the dense mean."""
    return mean >= dense - math.sqrt((sd**2 + dense_sd**2) / 2)


def ticket_lines(levels: pd.DataFrame, dense: tuple[float, float], names: dict[str, str]) -> list[str]:
    """For each rewinding, the largest sparsity where the ticket stays within one sd of dense, and its controls'."""
    lines = []
    for key in ("rewind-0", "rewind-k"):
        label = names[key]
        parts = []
        for role, what in (("main", "the ticket"), ("random_reinit", "random re-init"), ("random_mask", "random mask")):
            curve = label if role == "main" else f"{label}: {ROLE_NAMES[role]}"
            rows = levels[levels["curve"] == curve]
            ok = rows[
                [
                    _within(m, s if s == s else 0.0, *dense)
                    for m, s in zip(rows["top1_mean"], rows["top1_sd"], strict=True)
                ]
            ]
            parts.append(f"{what} up to sparsity {ok['sparsity'].max():.3f}" if len(ok) else f"{what} at no level")
        lines.append(f"{label}: within one standard deviation of dense ({dense[0]:.3f} ± {dense[1]:.3f}): "
                     + "; ".join(parts) + ".")  # fmt: skip
    return lines


def retraining_lines(levels: pd.DataFrame, names: dict[str, str]) -> list[str]:
    """The four retrainings compared at the highest sparsity."""
    top = levels["level"].max()
    rows = levels[(levels["level"] == top) & levels["curve"].isin(names.values())].sort_values(
        "top1_mean", ascending=False
    )
    sparsity = rows["sparsity"].mean()
    ranked = "; ".join(
        f"{c} {m:.3f} ± {s:.3f}" for c, m, s in zip(rows["curve"], rows["top1_mean"], rows["top1_sd"], strict=True)
    )
    return [f"At sparsity {sparsity:.3f} (the last level), test accuracy by retraining, best first: {ranked}."]


def barrier_lines(barriers: pd.DataFrame) -> list[str]:
    """Where each rewind point's copies are stable (barrier below 2%), and the largest barrier seen."""
    lines = []
    for label, rows in barriers.groupby("retraining", sort=False):
        stable = rows[rows["barrier_mean"] < STABLE_BARRIER]
        worst = rows.loc[rows["barrier_mean"].idxmax()]
        where = f"stable at {len(stable)} of {len(rows)} levels" + (
            f" (up to sparsity {stable['sparsity'].max():.3f})" if len(stable) else ""
        )
        lines.append(f"{label}: {where}; largest mean barrier {worst['barrier_mean']:.3f} at sparsity "
                     f"{worst['sparsity']:.3f}.")  # fmt: skip
    return lines


def sanity_lines(sanity: pd.DataFrame) -> list[str]:
    """Per method, how much each sanity-check variant changes the accuracy of the unmodified method."""
    lines = []
    for (method, target), rows in sanity.groupby(["method", "target_value"], sort=True):
        base = rows[rows["variant"] == "unmodified"].iloc[0]
        changes = ", ".join(
            f"{v} {c:+.3f}" for v, c in zip(rows["variant"], rows["change"], strict=True) if v != "unmodified"
        )
        lines.append(f"{method} at sparsity {target:g}: unmodified {base['top1_mean']:.3f}; {changes}.")
    return lines


def scratch_lines(scratch: pd.DataFrame) -> list[str]:
    """Fine-tuned minus scratch accuracy at each channel ratio."""
    lines = []
    for target, rows in scratch.groupby("target_value", sort=True):
        value = rows.set_index("training")["top1_mean"]
        gap = value["pruned + fine-tuned"] - value["scratch"]
        lines.append(f"channel ratio {target:g}: pruned + fine-tuned minus scratch = {gap:+.3f} top-1 "
                     f"({value['pruned + fine-tuned']:.3f} vs {value['scratch']:.3f}).")  # fmt: skip
    return lines


def mnist1d_lines(levels: pd.DataFrame, dense: tuple[float, float], names: dict[str, str], dataset: str) -> list[str]:
    """Our tickets at the level nearest 92% sparsity, beside Greydanus & Kobak's MNIST-1D lottery-ticket figure."""
    label = names["rewind-0"]
    tickets = levels[levels["curve"] == label]
    near = tickets.iloc[(tickets["sparsity"] - 0.92).abs().argsort()[:1]].iloc[0]
    random = levels[(levels["curve"] == f"{label}: random mask") & (levels["level"] == near["level"])].iloc[0]
    caveat = [] if dataset == "mnist1d" else [f"This run is on {dataset}; the paper's numbers are on MNIST-1D."]
    return caveat + [
        f"At sparsity {near['sparsity']:.3f} (level {int(near['level'])}, nearest to the paper's 92%): ticket "
        f"{near['top1_mean']:.3f} ± {near['top1_sd']:.3f}, random mask {random['top1_mean']:.3f} ± "
        f"{random['top1_sd']:.3f}, dense {dense[0]:.3f} ± {dense[1]:.3f}; ticket minus dense "
        f"{near['top1_mean'] - dense[0]:+.3f}, ticket minus random mask {near['top1_mean'] - random['top1_mean']:+.3f}."
    ]
