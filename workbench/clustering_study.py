"""Notebook 04's experiments and analysis: filter merging and neuron merging against FPGM and L1 removal, and weight
sharing with measured storage. The grids are defined once here (the notebook and its parameter check run the same);
every table and sentence is computed from the records.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import torch.nn as nn
from sklearn.decomposition import PCA

from workbench.metrics import prunable_layers
from workbench.pruning import merging

NOTEBOOK = "04-clustering"
MERGERS = ("filter_merge", "neuron_merge")
REMOVERS = ("fpgm", "l1")


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
    algorithm: str,
    threshold: float,
    finetune_epochs: int,
    finetune_lr: float,
    bits,
    share_sparsity: float,
    sharing_finetune_epochs: int,
) -> dict[str, dict[str, Any]]:
    """The notebook's sweeps: merging and removal after and before fine-tuning, weight sharing alone and after
    magnitude pruning."""  # fmt: skip
    data = dict(dataset=dataset, model=model, seeds=seeds, epochs=epochs, batch_size=batch_size, lr=lr)
    hparams = {"*": {"round_to": round_to}, "filter_merge": {"algorithm": algorithm},
               "neuron_merge": {"threshold": threshold}}  # fmt: skip
    merge = dict(methods=[*MERGERS, *REMOVERS], targets=flops_reductions, target_kind="flops_reduction",
                 hparams=hparams, **data)  # fmt: skip
    return {
        "after": {**merge, "finetune_epochs": finetune_epochs, "finetune_lr": finetune_lr},
        "before": {**merge, "finetune_epochs": 0},
        "sharing": dict(methods=["weight_sharing"], targets=sorted({0.0, share_sparsity}), target_kind="sparsity",
                        hparams={"weight_sharing": {"bits": list(bits)}}, finetune_epochs=sharing_finetune_epochs,
                        finetune_lr=finetune_lr, **data),
    }  # fmt: skip


def with_bits(results: pd.DataFrame) -> pd.DataFrame:
    out = results.copy()
    out["bits"] = [json.loads(h)["bits"] for h in out["hparams"]]
    out["pipeline"] = ["share only" if t == 0 else f"prune to {t:g}, then share" for t in out["target_value"]]
    return out


def key_figures(after: pd.DataFrame, sharing: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic figures: every merging/removal run reached its FLOPs target; every sharing run has the asked
    index width and sparsity."""
    merge = after.groupby(["method", "target_value"], sort=True).agg(
        runs=("seed", "count"), lowest=("flops_reduction", "min")
    ).reset_index()  # fmt: skip
    merge["reached"] = merge["lowest"] >= merge["target_value"] - 1e-9
    shared = with_bits(sharing).groupby(["bits", "target_value"], sort=True).agg(
        runs=("seed", "count"), index_bits=("index_bits", "max"), sparsity=("sparsity", "mean")
    ).reset_index()  # fmt: skip
    shared["sparsity"] = shared["sparsity"].round(3)
    return merge.drop(columns="lowest"), shared


def merge_table(after: pd.DataFrame, before: pd.DataFrame) -> pd.DataFrame:
    """Per method and target: test accuracy right after removal and after fine-tuning (mean, sd over seeds)."""
    keys = ["method", "target_value"]
    table = pd.DataFrame({
        "before_finetune": before.groupby(keys)["top1"].mean(), "before_sd": before.groupby(keys)["top1"].std(),
        "after_finetune": after.groupby(keys)["top1"].mean(), "after_sd": after.groupby(keys)["top1"].std(),
        "dense": after.groupby(keys)["dense_top1"].mean(),
    })  # fmt: skip
    return table.reset_index()


def sharing_table(sharing: pd.DataFrame) -> pd.DataFrame:
    """Per pipeline and bits: accuracy (mean, sd) and the measured storage (bytes, ratio to float32)."""
    frame = with_bits(sharing)
    return frame.groupby(["pipeline", "bits"], sort=True).agg(
        top1_mean=("top1", "mean"), top1_sd=("top1", "std"), dense=("dense_top1", "mean"),
        storage_bytes=("storage_bytes", "mean"), dense_bytes=("dense_storage_bytes", "mean"),
        storage_ratio=("storage_ratio", "mean"),
    ).reset_index()  # fmt: skip


def layer_picture(model: nn.Module, layer: str, k: int, algorithm: str = "kmeans", seed: int = 0) -> pd.DataFrame:
    """A layer's unit-norm filters in two PCA dimensions, with their cluster and whether each is its cluster's
    representative (what filter_merge keeps)."""
    weight = dict(prunable_layers(model))[layer].weight.detach().flatten(1)
    features = (weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12)).double().numpy()
    labels, reps = merging.cluster(features, k, algorithm, seed, where=f"layer {layer!r}")
    xy = PCA(n_components=2, random_state=seed).fit_transform(features)
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "cluster": labels, "representative": np.isin(
        np.arange(len(labels)), reps)})  # fmt: skip


def conclusions(merged: pd.DataFrame, shared: pd.DataFrame, tolerance: float = 0.01) -> list[str]:
    """Sentences computed from the tables: what merging saves before fine-tuning, what is left after it, and the
    fewest bits that stay within `tolerance` of dense in each sharing pipeline, with the measured ratio."""
    lines = []
    for target, rows in merged.groupby("target_value", sort=True):
        by = rows.set_index("method")
        gains = ", ".join(f"{m} {by.loc[m, 'before_finetune'] - by.loc['l1', 'before_finetune']:+.3f}" for m in
                          (*MERGERS, "fpgm"))  # fmt: skip
        best = by["after_finetune"].idxmax()
        lines.append(f"{target:g}x FLOPs, right after removal, against L1's {by.loc['l1', 'before_finetune']:.3f}: "
                     f"{gains}; after fine-tuning the best is {best} {by.loc[best, 'after_finetune']:.3f}"
                     + ("." if best == "l1" else f" (L1 {by.loc['l1', 'after_finetune']:.3f})."))  # fmt: skip
    for pipeline, rows in shared.groupby("pipeline", sort=False):
        ok = rows[rows["top1_mean"] >= rows["dense"] - tolerance]
        if len(ok):
            first = ok.sort_values("bits").iloc[0]
            lines.append(f"{pipeline}: {int(first['bits'])} bits per weight stay within {tolerance:g} of dense "
                         f"({first['top1_mean']:.3f} vs {first['dense']:.3f}), stored {first['storage_ratio']:.1f}x "
                         f"smaller than float32 ({int(first['storage_bytes'])} of {int(first['dense_bytes'])} "
                         "bytes, measured).")  # fmt: skip
        else:
            lines.append(f"{pipeline}: no bit width tried stays within {tolerance:g} of dense.")
    return lines
