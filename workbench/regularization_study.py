"""Notebook 05's experiments and analysis: the regularization family against L1 filter ranking on a plain model.

The grids are defined once here (the notebook and its parameter check run the same ones); every table and sentence
is computed from the sweeps' records and the dense runs' cached traces.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from workbench.runner import store

NOTEBOOK = "05-regularization"
METHODS = ("slimming", "ssl", "greg")
BASELINE = "l1"


def grids(
    *,
    dataset: str,
    model: str,
    seeds,
    epochs: int,
    batch_size: int,
    lr: float,
    flops_reductions,
    round_to: int,
    slimming_lams,
    ssl_lams,
    greg_reg_epochs: int,
    finetune_epochs: int,
    finetune_lr: float,
) -> dict[str, dict[str, Any]]:
    """The notebook's two sweeps: every method and lambda after fine-tuning, and the same right after removal."""
    hparams = {"slimming": {"lam": list(slimming_lams)}, "ssl": {"lam": list(ssl_lams)},
               "greg": {"reg_epochs": greg_reg_epochs, "reg_lr": finetune_lr}, "*": {"round_to": round_to}}  # fmt: skip
    data = dict(dataset=dataset, model=model, epochs=epochs, batch_size=batch_size, lr=lr)
    common = dict(methods=[*METHODS, BASELINE], targets=flops_reductions, seeds=seeds, target_kind="flops_reduction",
                  hparams=hparams, **data)  # fmt: skip
    return {
        "after": {**common, "finetune_epochs": finetune_epochs, "finetune_lr": finetune_lr},
        "before": {**common, "finetune_epochs": 0},
    }


def label(method: str, hparams: str) -> str:
    """'slimming λ=0.01' for regularised runs, the method's name otherwise."""
    lam = json.loads(hparams).get("lam")
    return method if lam is None else f"{method} λ={lam:g}"


def labelled(results: pd.DataFrame) -> pd.DataFrame:
    out = results.copy()
    out["setting"] = [label(m, h) for m, h in zip(out["method"], out["hparams"], strict=True)]
    return out


def key_figures(results: pd.DataFrame) -> pd.DataFrame:
    """Deterministic figures: per setting and target, the runs and whether every seed reached the FLOPs target."""
    frame = labelled(results)
    table = (
        frame.groupby(["setting", "target_value"], sort=True)
        .agg(runs=("seed", "count"), lowest=("flops_reduction", "min"))
        .reset_index()
    )
    table["reached"] = table["lowest"] >= table["target_value"] - 1e-9
    return table.drop(columns="lowest")


def removal_table(after: pd.DataFrame, before: pd.DataFrame) -> pd.DataFrame:
    """Per setting and target: dense, right after removal, after fine-tuning (means over seeds), and what removal
    cost (dense minus before fine-tuning)."""
    keys = ["setting", "target_value"]
    mean = {
        "dense": labelled(after).groupby(keys)["dense_top1"].mean(),
        "before_finetune": labelled(before).groupby(keys)["top1"].mean(),
        "after_finetune": labelled(after).groupby(keys)["top1"].mean(),
        "after_sd": labelled(after).groupby(keys)["top1"].std(),
    }
    table = pd.DataFrame(mean).reset_index()
    table["removal_loss"] = table["dense"] - table["before_finetune"]
    return table


def traces(result) -> pd.DataFrame:
    """What each regularised dense run's penalty shrank, every few steps: one row per (setting, seed, step) with the
    quantiles of |gamma| (slimming) or of the filter norms (ssl)."""
    rows, seen = [], set()
    for recipe in result.recipes:
        if recipe.method not in ("slimming", "ssl") or recipe.dense_key() in seen:
            continue
        seen.add(recipe.dense_key())
        info = store.train_dense(recipe, store.bundle_of(recipe)).info
        for name, points in info.get("traces", {}).items():
            for point in points:
                rows.append({"setting": label(recipe.method, json.dumps(recipe.hparams.as_dict())), "seed": recipe.seed,
                             "what": name, **point})  # fmt: skip
    return pd.DataFrame(rows)


def cost_table(result, epochs: int, greg_reg_epochs: int) -> pd.DataFrame:
    """Extra training each setting pays over the plain model: measured dense training time as a ratio to the plain
    dense run's (same run, same machine), and extra epochs (GReg's regularisation phase)."""
    seconds: dict[str, list[float]] = {}
    seen = set()
    for recipe in result.recipes:
        if (recipe.dense_key(), recipe.method, recipe.hparams) in seen:
            continue
        seen.add((recipe.dense_key(), recipe.method, recipe.hparams))
        info = store.train_dense(recipe, store.bundle_of(recipe)).info
        name = label(recipe.method, json.dumps(recipe.hparams.as_dict()))
        seconds.setdefault(name, []).append(info.get("train_seconds", float("nan")))
    plain = pd.Series(seconds[BASELINE]).mean()
    rows = [{"setting": name, "dense_time_ratio": pd.Series(v).mean() / plain,
             "extra_epochs": greg_reg_epochs if name == "greg" else 0, "dense_epochs": epochs}
            for name, v in sorted(seconds.items())]  # fmt: skip
    return pd.DataFrame(rows)


def selected_by_validation(after: pd.DataFrame) -> pd.DataFrame:
    """Per method and target, the lambda with the best mean validation accuracy, and its test accuracy."""
    frame = labelled(after)
    frame = frame[frame["method"].isin(["slimming", "ssl"])]
    means = frame.groupby(["method", "setting", "target_value"])[["val_top1", "top1"]].mean().reset_index()
    best = means.loc[means.groupby(["method", "target_value"])["val_top1"].idxmax()]
    return best.rename(columns={"setting": "chosen", "val_top1": "val_top1_mean", "top1": "test_top1_mean"})


def conclusions(removal: pd.DataFrame, chosen: pd.DataFrame, cost: pd.DataFrame) -> list[str]:
    """Sentences computed from the tables: the best setting per target, removal losses against L1, the lambdas the
    validation split picks, and the cost."""
    lines = []
    for target, rows in removal.groupby("target_value", sort=True):
        best = rows.loc[rows["after_finetune"].idxmax()]
        base = rows[rows["setting"] == BASELINE].iloc[0]
        lines.append(
            f"{target:g}x FLOPs: best after fine-tuning {best['setting']} {best['after_finetune']:.3f} "
            f"(L1 on the plain model {base['after_finetune']:.3f}); right after removal L1 loses "
            f"{base['removal_loss']:.3f}, " + ", ".join(
                f"{r['setting']} {r['removal_loss']:.3f}" for _, r in rows.iterrows() if r["setting"] != BASELINE)
            + "."
        )  # fmt: skip
    for _, row in chosen.iterrows():
        lines.append(
            f"validation picks {row['chosen']} at {row['target_value']:g}x (test {row['test_top1_mean']:.3f})."
        )
    slow = cost.loc[cost["dense_time_ratio"].idxmax()]
    lines.append(f"dense training with a penalty took up to {slow['dense_time_ratio']:.2f}x the plain run's time "
                 f"({slow['setting']}); greg pays {int(cost['extra_epochs'].max())} extra epochs.")  # fmt: skip
    return lines
