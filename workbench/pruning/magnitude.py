"""Unstructured magnitude pruning: layer-wise, global, gradual (cubic schedule), LAMP, random."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils import prune

from workbench.metrics import prunable_layers
from workbench.pruning.masks import prune_global, prune_layerwise
from workbench.pruning.registry import METHODS

_COMMON = {"family": "magnitude", "granularity": "weight", "needs_data": False}


@METHODS.register(
    "layerwise_magnitude",
    **_COMMON,
    scope="layer",
    schedule="one-shot",
    cite="han2015learning",
    summary="the smallest |w| in every layer, each layer at the target sparsity",
)
def layerwise_magnitude(model: nn.Module, sparsity: float) -> None:
    prune_layerwise(model, sparsity, prune.l1_unstructured)


@METHODS.register(
    "global_magnitude",
    **_COMMON,
    scope="global",
    schedule="one-shot",
    cite="blalock2020what",
    summary="the smallest |w| over all layers together",
)
def global_magnitude(model: nn.Module, sparsity: float) -> None:
    prune_global(model, sparsity)


@METHODS.register(
    "gradual_magnitude",
    **_COMMON,
    scope="layer",
    schedule="cubic",
    cite="zhu2018prune",
    summary="layer-wise magnitude, tightened during fine-tuning on Zhu & Gupta's cubic schedule",
)
def gradual_magnitude(model: nn.Module, sparsity: float) -> None:
    prune_layerwise(model, sparsity, prune.l1_unstructured)


@METHODS.register(
    "lamp",
    **_COMMON,
    scope="global",
    schedule="one-shot",
    cite="lee2021layeradaptive",
    summary="global threshold on LAMP scores w_u^2 / sum of w_v^2 over weights at least as large",
)
def lamp(model: nn.Module, sparsity: float) -> None:
    prune_global(model, sparsity, scores={m: lamp_scores(m.weight) for _, m in prunable_layers(model)})


@METHODS.register(
    "random",
    **_COMMON,
    scope="layer",
    schedule="one-shot",
    cite="blalock2020what",
    summary="uniformly random weights in every layer, each layer at the target sparsity",
)
def random(model: nn.Module, sparsity: float) -> None:
    prune_layerwise(model, sparsity, prune.random_unstructured)


def lamp_scores(weight: torch.Tensor) -> torch.Tensor:
    """LAMP score (Lee et al., 2021) of each weight: w_u^2 / sum_{v >= u} w_v^2, weights sorted by |w|."""
    squared = weight.detach().flatten() ** 2
    order = torch.argsort(squared)
    sorted_sq = squared[order]
    suffix = torch.flip(torch.cumsum(torch.flip(sorted_sq, [0]), 0), [0])
    scores = torch.empty_like(squared)
    scores[order] = sorted_sq / suffix.clamp_min(torch.finfo(suffix.dtype).tiny)
    return scores.view_as(weight)
