"""Unstructured masks through torch.nn.utils.prune: targets as exact counts, masks that only shrink."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.nn.utils import prune

from workbench.metrics import prunable_layers, prunable_weight_count


def mask_of(module: nn.Module) -> torch.Tensor:
    """The module's current weight mask (all ones when it has never been pruned)."""
    return getattr(module, "weight_mask", torch.ones_like(module.weight))


def extra_to_prune(modules: list[nn.Module], sparsity: float) -> int:
    """How many more weights of `modules` to zero so that round(sparsity * total) are pruned."""
    total = sum(m.weight.numel() for m in modules)
    already = sum(int((mask_of(m) == 0).sum()) for m in modules)
    return max(0, round(sparsity * total) - already)


def prune_layerwise(model: nn.Module, sparsity: float, method=prune.l1_unstructured) -> None:
    """Bring every conv/linear layer to `sparsity` with a torch.nn.utils.prune function (e.g. l1, random)."""
    for _, module in prunable_layers(model):
        method(module, "weight", amount=extra_to_prune([module], sparsity))


def prune_global(model: nn.Module, sparsity: float, scores: dict[nn.Module, torch.Tensor] | None = None) -> None:
    """Zero the lowest-scoring weights across all conv/linear layers (|w| when `scores` is None)."""
    modules = [m for _, m in prunable_layers(model)]
    importance = None if scores is None else {(m, "weight"): scores[m].contiguous() for m in modules}
    prune.global_unstructured(
        [(m, "weight") for m in modules],
        pruning_method=prune.L1Unstructured,
        importance_scores=importance,
        amount=extra_to_prune(modules, sparsity),
    )


def masked_like(dense: nn.Module, pruned: nn.Module) -> nn.Module:
    """A copy of `dense` with global magnitude masks leaving as many conv/linear weights as `pruned` holds."""
    twin = copy.deepcopy(dense)
    with torch.no_grad():  # the masked weights stay plain tensors, so the twin can itself be copied
        prune_global(twin, 1 - prunable_weight_count(pruned) / prunable_weight_count(dense))
    return twin


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold the masks into the weights (after fine-tuning) so the model is an ordinary module again."""
    for _, module in prunable_layers(model):
        if prune.is_pruned(module) and hasattr(module, "weight_mask"):
            prune.remove(module, "weight")
    return model


@torch.no_grad()
def refresh_masked_weights(model: nn.Module) -> nn.Module:
    """Recompute `weight = weight_orig * weight_mask` of every masked layer now (torch.nn.utils.prune only does so
    at the next forward pass), as a plain tensor, so a model read or copied right after training is up to date."""
    for module in model.modules():
        if hasattr(module, "weight_mask") and hasattr(module, "weight_orig"):
            module.weight = module.weight_orig * module.weight_mask
    return model
