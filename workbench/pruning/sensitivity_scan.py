"""Per-layer sensitivity scan (Li et al., 2017; Distiller's sensitivity analysis) and the allocation it implies.

Each prunable layer is pruned alone by weight magnitude at increasing ratios, without fine-tuning, and the
validation accuracy is measured. For a global target, every layer then gets the largest ratio whose accuracy drop
stays under one common threshold, the threshold found by bisection so that the layers' ratios, weighted by their
sizes, meet the target. (The scan here prunes weights; Li et al. scanned filters.)
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.nn.utils import prune

from workbench import checks
from workbench.metrics import prunable_layers
from workbench.pruning.masks import extra_to_prune
from workbench.torchutil import evaluating


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 of `model` on a labelled batch, in eval mode."""
    with evaluating(model):
        correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(batch_size), y.split(batch_size),
                                                                              strict=True))  # fmt: skip
    return correct / len(x)


def scan(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ratios) -> pd.DataFrame:
    """Validation accuracy with one layer at a time pruned by magnitude to each ratio: rows layer x ratio.

    Columns: layer, weights, ratio, accuracy, drop (= accuracy of the model as given - accuracy).
    """
    ratios = sorted(float(checks.fraction("scan ratio", r)) for r in ratios)
    base = accuracy(model, x, y)
    rows = []
    for name, _ in prunable_layers(model):
        for ratio in ratios:
            trial = copy.deepcopy(model)
            layer = dict(trial.named_modules())[name]
            prune.l1_unstructured(layer, "weight", amount=extra_to_prune([layer], ratio))
            acc = accuracy(trial, x, y)
            rows.append({"layer": name, "weights": layer.weight.numel(), "ratio": ratio, "accuracy": acc,
                         "drop": base - acc})  # fmt: skip
    return pd.DataFrame(rows)


def allocate(table: pd.DataFrame, sparsity: float) -> dict[str, float]:
    """Per-layer ratios meeting `sparsity` overall: each layer the largest ratio whose drop is under a threshold.

    Drops are made non-decreasing in the ratio (a layer pruned more never counts as less sensitive) and interpolated
    linearly between scanned ratios; a layer may go to the largest scanned ratio, not beyond. One-line error if even
    the largest ratios everywhere fall short of `sparsity`.
    """
    checks.fraction("sparsity", sparsity)
    curves = {}
    for layer, rows in table.groupby("layer", sort=False):
        rows = rows.sort_values("ratio")
        ratios = np.concatenate([[0.0], rows["ratio"].to_numpy()])
        drops = np.maximum.accumulate(np.concatenate([[0.0], rows["drop"].clip(lower=0).to_numpy()]))
        curves[layer] = (ratios, drops, int(rows["weights"].iloc[0]))
    total = sum(n for _, _, n in curves.values())

    def ratios_at(threshold: float) -> dict[str, float]:
        return {layer: _largest_ratio(r, d, threshold) for layer, (r, d, _) in curves.items()}

    def overall(threshold: float) -> float:
        return sum(ratio * curves[layer][2] for layer, ratio in ratios_at(threshold).items()) / total

    high = max(d[-1] for _, d, _ in curves.values()) + 1e-9
    if overall(high) < sparsity - 1e-9:
        raise checks.ConfigError(
            f"the scanned ratios reach at most sparsity {overall(high):.3f}, below the target {sparsity}; "
            "scan larger ratios"
        )
    low = 0.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if overall(mid) < sparsity else (low, mid)
    return _exact(ratios_at(high), {layer: n for layer, (_, _, n) in curves.items()}, sparsity)


def _largest_ratio(ratios: np.ndarray, drops: np.ndarray, threshold: float) -> float:
    """The largest ratio whose (interpolated, non-decreasing) drop is at most `threshold`."""
    above = np.nonzero(drops > threshold)[0]
    if not len(above):
        return float(ratios[-1])
    i = above[0]  # drops[i - 1] <= threshold < drops[i]
    span = drops[i] - drops[i - 1]
    return float(ratios[i - 1] + (ratios[i] - ratios[i - 1]) * (threshold - drops[i - 1]) / span)


def _exact(ratios: dict[str, float], sizes: dict[str, int], sparsity: float) -> dict[str, float]:
    """Ratios whose weight counts are whole numbers summing to round(sparsity * total) exactly: the bisection's
    ratios scaled to the target, then rounded by largest remainder (so the count never depends on float noise)."""
    total = sum(ratios[k] * sizes[k] for k in ratios) / sum(sizes.values())
    scaled = {k: r * sparsity / total for k, r in ratios.items()} if total > 0 else dict(ratios)
    wanted = round(sparsity * sum(sizes.values()))
    counts = {k: min(sizes[k], int(scaled[k] * sizes[k])) for k in scaled}
    by_remainder = sorted(scaled, key=lambda k: (-(scaled[k] * sizes[k] - counts[k]), k))
    for k in by_remainder[: max(0, wanted - sum(counts.values()))]:
        counts[k] += 1
    return {k: counts[k] / sizes[k] for k in scaled}
