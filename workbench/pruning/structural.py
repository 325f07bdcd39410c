"""Physical channel removal through Torch-Pruning's dependency graph (DepGraph, Fang et al., CVPR 2023).

A pruned model is an ordinary, smaller nn.Module: no masks. This file holds what Torch-Pruning needs around
it: a traceable stand-in for option-A shortcuts, protection of the classifier, targets in FLOPs, the
prunability audit, and saving/loading a pruned architecture with `weights_only=True`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch_pruning as tp

from workbench import metrics
from workbench.models.cifar_resnet import PadShortcut

ALLOCATIONS = ("uniform", "global")
SHAPE_ATTRS = ("in_channels", "out_channels", "groups", "num_features", "in_features", "out_features")


class SelectShortcut(nn.Conv2d):
    """Option A as a fixed 1x1 convolution: output channel `offset + i` copies input channel i, stride s.

    Torch-Pruning cannot follow channels through slicing and zero-padding; through a convolution it can, and
    pruning it keeps exactly the copy-or-zero structure. Its weights never train (requires_grad=False).
    """

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__(in_planes, planes, 1, stride=stride, bias=False)
        offset = (planes - in_planes) // 2
        with torch.no_grad():
            self.weight.zero_()
            self.weight[offset + torch.arange(in_planes), torch.arange(in_planes), 0, 0] = 1.0
        self.weight.requires_grad_(False)


def make_traceable(model: nn.Module) -> nn.Module:
    """Replace every option-A PadShortcut by its equivalent SelectShortcut (in place); return the model."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, PadShortcut):
                in_planes = next(m for m in module.modules() if isinstance(m, nn.Conv2d)).in_channels
                planes = in_planes + child.extra
                setattr(module, child_name, SelectShortcut(in_planes, planes, child.stride))
    return model


def classifier_layers(model: nn.Module, input_shape) -> list[nn.Module]:
    """The layers whose outputs are the model's outputs (never pruned): the last conv/linear layers run."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod)) for _, m in metrics.prunable_layers(model)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    return order[-1:]


def dependency_graph(model: nn.Module, input_shape) -> tp.DependencyGraph:
    return tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *input_shape))


@dataclass
class Target:
    """What to prune to: a FLOPs reduction factor (e.g. 2.0 halves FLOPs) or a fraction of channels."""

    flops_reduction: float | None = None
    channel_ratio: float | None = None

    def __post_init__(self):
        if (self.flops_reduction is None) == (self.channel_ratio is None):
            raise ValueError("give exactly one of flops_reduction (>= 1) or channel_ratio (in [0, 1))")
        if self.flops_reduction is not None and not self.flops_reduction >= 1:
            raise ValueError(f"flops_reduction must be >= 1, got {self.flops_reduction!r}")
        if self.channel_ratio is not None and not 0 <= self.channel_ratio < 1:
            raise ValueError(f"channel_ratio must be in [0, 1), got {self.channel_ratio!r}")


def _pruner(model, input_shape, importance, ratio: float, allocation: str, round_to: int | None, ignored):
    return tp.pruner.MetaPruner(
        model,
        torch.zeros(1, *input_shape),
        importance=importance,
        pruning_ratio=ratio,
        global_pruning=allocation == "global",
        max_pruning_ratio=0.95,
        ignored_layers=ignored,
        round_to=round_to,
    )


def prune_to_ratio(
    model, input_shape, importance, ratio: float, allocation: str = "uniform", round_to: int | None = None
) -> list[tuple[str, list[int]]]:
    """Remove `ratio` of the channels of every prunable group (uniform) or by one global ranking, in place.

    Returns the removed channels as (root layer name, indices) per group, in the dense model's indexing.
    """
    if allocation not in ALLOCATIONS:
        raise ValueError(f"unknown allocation {allocation!r}; known: {', '.join(ALLOCATIONS)}")
    names = {m: n for n, m in model.named_modules()}
    pruner = _pruner(model, input_shape, importance, ratio, allocation, round_to, classifier_layers(model, input_shape))
    removed = []
    for group in pruner.step(interactive=True):
        root = group[0].dep.target.module
        removed.append((names.get(root, str(root)), sorted(int(i) for i in group[0].idxs)))
        group.prune()
    return removed


def ratio_for_flops(
    model,
    input_shape,
    make_importance: Callable[[nn.Module], object],
    reduction: float,
    allocation: str = "uniform",
    round_to: int | None = None,
    tolerance: float = 0.01,
) -> float:
    """The channel ratio whose pruned model comes closest to dense_flops / `reduction` FLOPs (bisection on copies).

    With channel rounding the reachable FLOPs are steps, so the closest ratio seen is returned.
    """
    dense = metrics.flop_count(model, input_shape)["flops"]
    goal = dense / reduction
    low, high, best = 0.0, 0.95, (float("inf"), 0.0)
    for _ in range(16):
        mid = (low + high) / 2
        trial = copy.deepcopy(model)
        prune_to_ratio(trial, input_shape, make_importance(trial), mid, allocation, round_to)
        flops = metrics.flop_count(trial, input_shape)["flops"]
        best = min(best, (abs(flops - goal) / goal, mid))
        if best[0] <= tolerance:
            break
        low, high = (mid, high) if flops > goal else (low, mid)
    return best[1]


def prune_structured(
    model, input_shape, make_importance, target: Target, allocation: str = "uniform", round_to: int | None = None
) -> list[tuple[str, list[int]]]:
    """Prune `model` in place to `target`; `make_importance(model)` builds the criterion on the model as it is."""
    ratio = target.channel_ratio
    if ratio is None:
        # uniform allocation removes the same counts whatever the criterion: search with a cheap one
        search = (lambda m: tp.importance.MagnitudeImportance(p=1)) if allocation == "uniform" else make_importance
        ratio = ratio_for_flops(model, input_shape, search, target.flops_reduction, allocation, round_to)
    importance = make_importance(model)
    if allocation == "global":
        importance = MeanNormalized(importance)
    return prune_to_ratio(model, input_shape, importance, ratio, allocation, round_to)


class MeanNormalized(tp.importance.Importance):
    """A criterion's group scores divided by their mean, so one global ranking compares groups of different
    fan-in, map size or coupling on the same scale (each group's mean score becomes 1)."""

    def __init__(self, importance):
        self.importance = importance

    def __call__(self, group):
        scores = self.importance(group)
        if scores is None:
            return None
        return scores / scores.abs().mean().clamp_min(1e-12)


def audit(model: nn.Module, input_shape) -> list[dict]:
    """One row per coupled group: its root layer, the layers coupled to it, channels, prunable or why not."""
    names = {m: n for n, m in model.named_modules()}
    protected = classifier_layers(model, input_shape)
    graph = dependency_graph(model, input_shape)
    rows = []
    for group in graph.get_all_groups(ignored_layers=[], root_module_types=[nn.Conv2d, nn.Conv1d, nn.Linear]):
        root = group[0].dep.target.module
        layers = sorted(
            {
                names[d.dep.target.module]
                for d in group
                if d.dep.target.module in names and isinstance(d.dep.target.module, metrics.PRUNABLE_TYPES)
            }
        )
        reason = "output of the model (classifier)" if root in protected else ""
        rows.append(
            {
                "group": len(rows),
                "root": names.get(root, str(root)),
                "channels": len(group[0].idxs),
                "coupled_layers": layers,
                "n_coupled": len(layers),
                "prunable": not reason,
                "reason": reason or "prunable",
            }
        )
    return rows


def describe(model: nn.Module) -> dict[str, dict[str, int]]:
    """The pruned architecture: every module's channel attributes (plain ints)."""
    return {
        name: {a: int(getattr(m, a)) for a in SHAPE_ATTRS if isinstance(getattr(m, a, None), int)}
        for name, m in model.named_modules()
    }


def save_pruned(model: nn.Module, path, model_name: str, num_classes: int, input_shape) -> None:
    """Save weights plus the description of the pruned architecture (tensors and plain values only)."""
    torch.save(
        {
            "model": model_name,
            "num_classes": num_classes,
            "input_shape": list(input_shape),
            "traceable": any(isinstance(m, SelectShortcut) for m in model.modules()),
            "architecture": describe(model),
            "state_dict": model.state_dict(),
        },
        path,
    )


def load_pruned(path) -> nn.Module:
    """Rebuild a pruned model saved by save_pruned; loads with torch.load(weights_only=True)."""
    from workbench import models

    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = models.build(saved["model"], saved["num_classes"], tuple(saved["input_shape"]))
    if saved["traceable"]:
        make_traceable(model)
    modules = dict(model.named_modules())
    for name, attrs in saved["architecture"].items():
        for attr, value in attrs.items():
            setattr(modules[name], attr, value)
    for key, tensor in saved["state_dict"].items():
        owner, _, leaf = key.rpartition(".")
        module = modules[owner]
        if leaf in module._parameters:
            grad = module._parameters[leaf].requires_grad
            module._parameters[leaf] = nn.Parameter(torch.empty_like(tensor), requires_grad=grad)
        elif leaf in module._buffers:
            module._buffers[leaf] = torch.empty_like(tensor)
    model.load_state_dict(saved["state_dict"])
    return model
