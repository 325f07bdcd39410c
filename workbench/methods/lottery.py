"""The lottery-ticket family: iterative magnitude pruning (IMP), the procedure that finds lottery tickets.

IMP (Frankle & Carbin, ICLR 2019) trains, removes p% of the *remaining* weights by magnitude, resets the survivors
to their initial values (or, Frankle et al. 2020, to the weights of an early step k) and retrains; L levels leave
(1 - p)^L of the weights. The procedure lives in the pipeline (`schedule="iterative"`, `pruning_steps=L`,
`rewind_step=k`, `rewind="weights"|"lr"`, controls at every level); this method is its pruning step.

Approximation: Frankle & Carbin's layer-wise rates differ by layer type (conv, fully connected, output); here every
layer but the output one shares one rate and the output layer is pruned at `output_rate` times it, the rate solved
so that the level reaches its target sparsity over all layers (their Lenet: 20% per level, output 10%).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn
from torch.nn.utils import prune

from workbench import checks
from workbench.hparams import Hparams, param
from workbench.methods.base import Context, Method, register
from workbench.metrics import prunable_layers
from workbench.pruning.masks import extra_to_prune, prune_global
from workbench.targets import Sparsity

SCOPES = ("global", "layer")


def sparsity_after(rate: float, levels: int) -> float:
    """The sparsity L levels of IMP leave when each removes `rate` of the remaining weights: 1 - (1 - rate)^L."""
    checks.number("rate", rate, 0.0, 1.0, open_low=True, open_high=True)
    checks.integer("levels", levels, 1)
    left = (1 - rate) ** levels
    if 1 - left >= 1.0:
        raise checks.ConfigError(
            f"rate {rate:g} over {levels} levels leaves {left:.3g} of the weights, which is none; "
            "accepted: fewer levels or a smaller rate"
        )
    return 1 - left


def layer_sparsities(sizes: list[int], sparsity: float, level: int, output_rate: float) -> list[float]:
    """Per-layer sparsities after `level` levels at per-level rates p (every layer) and output_rate * p (the last),
    with p solved by bisection so that the layers together reach `sparsity`.

    Returns 1 - (1 - p_i)^level for each layer. A sparsity the output layer's slower rate cannot reach is a one-line
    error naming the largest reachable one.
    """
    total = sum(sizes)
    factors = [1.0] * (len(sizes) - 1) + [output_rate]

    def left(p: float) -> float:  # fraction of all weights left after `level` levels at rate p
        return sum(n * (1 - p * f) ** level for n, f in zip(sizes, factors, strict=True)) / total

    if left(1.0) > 1 - sparsity + 1e-12:
        raise checks.ConfigError(
            f"sparsity {sparsity:g} at level {level} is out of reach with output_rate={output_rate:g}; "
            f"the largest reachable is {1 - left(1.0):.4f}"
        )
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if left(mid) > 1 - sparsity else (low, mid)
    p = (low + high) / 2
    return [1 - (1 - p * f) ** level for f in factors]


@dataclass(frozen=True)
class ImpHparams(Hparams):
    scope: str = param("global", "global: one magnitude threshold over all layers; layer: per-layer rates")
    output_rate: float = param(0.5, "scope=layer: the output layer's per-level rate as a share of the others'")

    def __post_init__(self):
        checks.choice("scope", self.scope, SCOPES)
        checks.number("output_rate", self.output_rate, 0.0, 1.0, open_low=True)


@register
class Imp(Method):
    family, granularity, targets, schedule, Hparams = "lottery-ticket", "weight", (Sparsity,), "iterative", ImpHparams
    name, cite = "imp", "frankle2019lottery"
    summary = "iterative magnitude pruning: each level removes one share of the remaining |w|; rewinding makes tickets"

    def prune(self, model: nn.Module, target: Sparsity, hp: ImpHparams, ctx: Context) -> None:
        self.check_target(target)
        if hp.scope == "global":
            prune_global(model, target.value)
            return
        layers = [m for _, m in prunable_layers(model)]
        rates = layer_sparsities([m.weight.numel() for m in layers], target.value, ctx.level, hp.output_rate)
        for layer, sparsity in zip(layers, rates, strict=True):
            prune.l1_unstructured(layer, "weight", amount=extra_to_prune([layer], sparsity))
