"""Unstructured magnitude pruning: layer-wise, global, gradual (cubic schedule), LAMP, random.

Masks go through torch.nn.utils.prune; a target is a `Sparsity` of the conv/linear weights, reached exactly (up to
rounding) and never undone: a later, tighter call only adds zeros.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils import prune

from workbench.methods.base import INVERT_SCORES, Context, Method, oriented, register
from workbench.metrics import prunable_layers
from workbench.pruning.masks import prune_global, prune_layerwise
from workbench.targets import Sparsity


class MagnitudeMethod(Method):
    family = "magnitude"
    granularity = "weight"
    targets = (Sparsity,)

    def prune(self, model: nn.Module, target: Sparsity, hp, ctx: Context) -> None:
        self.check_target(target)
        self.mask(model, target.value)

    def mask(self, model: nn.Module, sparsity: float) -> None:
        raise NotImplementedError


class Layerwise(MagnitudeMethod):
    """Every layer at the target sparsity, weights chosen by a torch.nn.utils.prune function."""

    choose = staticmethod(prune.l1_unstructured)

    def mask(self, model, sparsity):
        prune_layerwise(model, sparsity, type(self).choose)


@register
class LayerwiseMagnitude(Layerwise):
    name, cite = "layerwise_magnitude", "han2015learning"
    summary = "the smallest |w| in every layer, each layer at the target sparsity"


@register
class GlobalMagnitude(MagnitudeMethod):
    name, cite, invertible = "global_magnitude", "blalock2020what", True
    summary = "the smallest |w| over all layers together"

    def prune(self, model: nn.Module, target: Sparsity, hp, ctx: Context) -> None:
        self.check_target(target)
        if not ctx.extra.get(INVERT_SCORES):
            return self.mask(model, target.value)
        scores = oriented({m: m.weight.detach().abs() for _, m in prunable_layers(model)}, ctx)
        prune_global(model, target.value, scores=scores)

    def mask(self, model, sparsity):
        prune_global(model, sparsity)


@register
class GradualMagnitude(LayerwiseMagnitude):
    name, cite, schedule = "gradual_magnitude", "zhu2018prune", "gradual"
    summary = "layer-wise magnitude, tightened during fine-tuning on Zhu & Gupta's cubic schedule"


@register
class Lamp(MagnitudeMethod):
    name, cite = "lamp", "lee2021layeradaptive"
    summary = "global threshold on LAMP scores w_u^2 / sum of w_v^2 over weights at least as large"

    def mask(self, model, sparsity):
        prune_global(model, sparsity, scores={m: lamp_scores(m.weight) for _, m in prunable_layers(model)})


@register
class RandomWeights(Layerwise):
    name, cite, choose = "random", "blalock2020what", staticmethod(prune.random_unstructured)
    summary = "uniformly random weights in every layer, each layer at the target sparsity"


def lamp_scores(weight: torch.Tensor) -> torch.Tensor:
    """LAMP score (Lee et al., 2021) of each weight: w_u^2 / sum_{v >= u} w_v^2, weights sorted by |w|."""
    squared = weight.detach().flatten() ** 2
    order = torch.argsort(squared)
    sorted_sq = squared[order]
    suffix = torch.flip(torch.cumsum(torch.flip(sorted_sq, [0]), 0), [0])
    scores = torch.empty_like(squared)
    scores[order] = sorted_sq / suffix.clamp_min(torch.finfo(suffix.dtype).tiny)
    return scores.view_as(weight)
