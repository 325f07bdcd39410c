"""Physical channel removal through Torch-Pruning's dependency graph (DepGraph, Fang et al., CVPR 2023).

A pruned model is an ordinary, smaller nn.Module: no masks. This file holds what Torch-Pruning needs around
it: a traceable stand-in for option-A shortcuts, protection of the classifier (and of auxiliary heads' outputs,
traced in train mode), the allocation of removals to a target (scored once, planned and costed analytically,
adjusted to within TOLERANCE of the target, removed once), the prunability audit, and saving/loading a pruned
architecture with `weights_only=True`. Any nn.Module with an example input shape goes in; models Torch-Pruning
cannot follow (UNSUPPORTED) are refused in one line before any work. Attention (nn.MultiheadAttention) keeps its
heads: every head loses the same dimensions; a torchvision ViT's `hidden_dim` follows its pruned embedding.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch_pruning as tp

from workbench import checks, metrics, speed
from workbench.models.cifar_resnet import PadShortcut
from workbench.targets import ChannelRatio, FlopsReduction, LatencyBudget, ParamReduction, Sparsity, Target
from workbench.torchutil import device_of, evaluating, hooks

ALLOCATIONS = ("uniform", "global")
TARGETS = (FlopsReduction, ParamReduction, ChannelRatio, Sparsity, LatencyBudget)
ROOT_TYPES = [nn.modules.conv._ConvNd, nn.Linear]
LAYER_TYPES = (nn.modules.conv._ConvNd, nn.Linear)
SHAPE_ATTRS = (
    "in_channels", "out_channels", "groups", "num_features", "in_features", "out_features",
    "embed_dim", "head_dim", "kdim", "vdim", "hidden_dim",
)  # fmt: skip
TOLERANCE = 0.02
"""A FLOPs, parameter or sparsity target is reached within this relative margin whenever the rounding allows."""
UNSUPPORTED = {
    "ShuffleNetV2": "its channel shuffle (view, transpose, view) interleaves the channels of two branches, which "
    "Torch-Pruning's dependency graph does not follow (pruned models fail to run)",
    "SwinTransformer": "its shifted-window attention (roll, window partition by view/permute and a per-head "
    "relative position bias table) is not followed by Torch-Pruning's dependency graph",
}
"""Model classes (by class name, anywhere in the model) that channel pruning refuses before any work, and why."""


def check_supported(model: nn.Module, name: str | None = None) -> None:
    """A one-line ValueError naming the model and the reason if Torch-Pruning cannot follow it (UNSUPPORTED)."""
    for module_name, module in model.named_modules():
        reason = UNSUPPORTED.get(type(module).__name__)
        if reason is not None:
            where = f" (its {module_name})" if module_name else ""
            label = name or type(model).__name__
            raise ValueError(f"cannot prune {label}: {type(module).__name__}{where}: {reason}")


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


def has_aux_outputs(model: nn.Module) -> bool:
    """Whether `model` returns auxiliary outputs in train mode (torchvision's GoogLeNet and Inception v3)."""
    return bool(getattr(model, "aux_logits", False))


def _forward_for_tracing(model: nn.Module, example: torch.Tensor):
    """One forward pass that runs every layer the model trains: train mode for models with auxiliary heads (batch
    norm and dropout kept in eval mode, so no statistics move), eval mode otherwise."""
    if has_aux_outputs(model):
        model.train()
        for module in model.modules():
            if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)):
                module.eval()
    return model(example)


def _flat_tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _flat_tensors(v)]
    return []


def classifier_layers(model: nn.Module, input_shape) -> list[nn.Module]:
    """The layers whose outputs are the model's outputs (never pruned): the last conv/linear layer run, and every
    conv/linear layer whose output tensor the model returns (auxiliary heads included)."""
    with evaluating(model):
        return _watching_outputs(model, lambda forward: forward(model, torch.zeros(1, *input_shape)))[1]


def _watching_outputs(model: nn.Module, run: Callable) -> tuple[object, list[nn.Module]]:
    """`run(forward)`'s result, where `forward(model, x)` is _forward_for_tracing, and the classifier layers seen."""
    order: list[tuple[nn.Module, torch.Tensor]] = []
    outputs: list[torch.Tensor] = []
    layers = [m for _, m in metrics.prunable_layers(model)]
    registrations = [lambda m=m: m.register_forward_hook(lambda mod, i, o: order.append((mod, o))) for m in layers]

    def forward(model: nn.Module, example: torch.Tensor):
        out = _forward_for_tracing(model, example.to(device_of(model)))
        outputs.extend(_flat_tensors(out))
        return out

    with hooks(registrations):
        result = run(forward)
    found = [module for module, out in order if any(out is t for t in outputs)]
    return result, [*dict.fromkeys([*(module for module, _ in order[-1:]), *found])]


def dependency_graph(model: nn.Module, input_shape, forward: Callable | None = None) -> tp.DependencyGraph:
    """Torch-Pruning's dependency graph of `model`, traced in eval mode (batch-norm statistics untouched); models
    with auxiliary heads are traced in train mode with batch norm and dropout in eval mode, so the heads are seen."""
    with evaluating(model, grad=True):
        example = torch.zeros(1, *input_shape, device=device_of(model))
        return tp.DependencyGraph().build_dependency(
            model, example_inputs=example, forward_fn=forward or _forward_for_tracing, verbose=False
        )


def traced(model: nn.Module, input_shape) -> tuple[tp.DependencyGraph, list[nn.Module]]:
    """dependency_graph and classifier_layers from one forward pass."""
    return _watching_outputs(model, lambda forward: dependency_graph(model, input_shape, forward))


def prune_to_target(
    model: nn.Module,
    input_shape,
    importance,
    target: Target,
    allocation: str = "uniform",
    round_to: int | None = None,
    max_ratio: float = 0.95,
) -> list[tuple[str, list[int]]]:
    """Remove channels of `model` in place until `target` is reached; scores come from `importance(group)`.

    Every group of coupled channels is scored once. "uniform" removes the same fraction of each group, "global"
    ranks all channels by one threshold on scores divided by their group's mean (on the raw scores when the
    importance sets `compare_raw = True`, as network slimming's batch-norm scales); either way at most `max_ratio` of
    a group goes and kept counts are multiples of `round_to`. FLOPs, parameter and sparsity targets take the
    smallest ratio whose analytic estimate reaches them (an exact count, see ChannelPlanner.estimate); a latency
    budget times pruned copies. Returns the removed channels per group: (root layer name, sorted indices in the
    model's indexing before this call).
    """
    if not isinstance(target, TARGETS):
        known = ", ".join(f"{t.__name__} ({t.kind})" for t in TARGETS)
        raise ValueError(f"unsupported target {target!r} for channel pruning; known: {known}")
    planner = ChannelPlanner(model, input_shape, importance, allocation, round_to, max_ratio)
    return planner.apply(planner.counts_for(target))


def prune_to_ratio(
    model: nn.Module,
    input_shape,
    importance,
    ratio: float,
    allocation: str = "uniform",
    round_to: int | None = None,
    max_ratio: float = 0.95,
) -> list[tuple[str, list[int]]]:
    """Remove `ratio` of the channels of every group (uniform) or by a global ranking, in place; see prune_to_target."""
    return prune_to_target(model, input_shape, importance, ChannelRatio(ratio), allocation, round_to, max_ratio)


@dataclass
class GroupPlan:
    """One prunable group: its root, channels ranked lowest score first, and each layer's removed count along it.

    With grouped convolutions the group holds `ch_groups` copies of `units` channels, pruned alike (as MetaPruner).
    """

    group: object
    name: str
    units: int
    ch_groups: int
    order: list[int]
    normalised: torch.Tensor
    cumulative: dict[tuple[nn.Module, str], list[int]]

    def removed(self, k: int) -> list[int]:
        """Sorted root indices lost when the first `k` units of the order go."""
        return sorted(u + g * self.units for u in self.order[:k] for g in range(self.ch_groups))


@dataclass
class LayerCost:
    """A module's dense FLOPs, parameters and conv/linear weights, with the channel counts they scale by."""

    flops: int
    params: int
    weights: int
    bias: int
    out: int
    inputs: int


class ChannelPlanner:
    """Scores every group of `model` once, then plans removals and counts their cost analytically (microseconds).

    Args: allocation: "uniform" or "global"; round_to: kept counts multiples of it (None: off); max_ratio: the most
    of any group removed.
    """

    def __init__(
        self,
        model: nn.Module,
        input_shape,
        importance,
        allocation: str = "uniform",
        round_to: int | None = None,
        max_ratio: float = 0.95,
    ):
        checks.choice("allocation", allocation, ALLOCATIONS)
        if round_to is not None:
            checks.integer("round_to", round_to, 1)
        checks.number("max_ratio", max_ratio, 0.0, 1.0, open_high=True)
        if allocation == "global" and not getattr(importance, "global_comparable", True):
            raise ValueError(
                f"{type(importance).__name__} scores rank channels within a group and do not compare across groups; "
                "use allocation='uniform'"
            )
        check_supported(model)
        self.model, self.input_shape, self.importance = model, tuple(input_shape), importance
        self.allocation, self.round_to, self.max_ratio = allocation, round_to, max_ratio
        self.graph, ignored = traced(model, input_shape)
        self.names = {m: n for n, m in model.named_modules()}
        self.param_dims = {u.parameters: u.pruning_dim for u in self.graph.unwrapped_parameters}
        self.last_fit: dict | None = None
        groups = self.graph.get_all_groups(ignored_layers=ignored, root_module_types=ROOT_TYPES)
        self.plans = [plan for group in groups if (plan := self._plan(group)) is not None]
        self.all_normalised = torch.cat([p.normalised for p in self.plans] or [torch.zeros(0)]).sort().values
        self._count_dense()

    def _count_dense(self) -> None:
        """Dense FLOPs, parameters and weights; per touched layer what scales with its channels, the rest fixed."""
        flops = metrics.flop_count(self.model, self.input_shape)
        params = metrics.count_params(self.model)["params"]
        self.dense = {"flops": flops["flops"], "params": params, "weights": metrics.prunable_weight_count(self.model)}
        touched = {module for plan in self.plans for module, _ in plan.cumulative}
        self.costs = {
            m: _layer_cost(m, self.graph, flops["per_module"].get(self.names.get(m), 0), self.param_dims)
            for m in touched
        }
        self.fixed = dict(self.dense)
        for module, cost in self.costs.items():
            for key, value in _scaled(module, cost, 0, 0):
                self.fixed[key] -= value

    def _plan(self, group) -> GroupPlan | None:
        scores = self.importance(group)
        if scores is None:
            return None
        ch_groups = self._channel_groups(group)
        units = len(group[0].idxs) // ch_groups
        unit_scores = scores.detach().double().cpu().view(ch_groups, units).mean(0)
        order = torch.argsort(unit_scores, stable=True)
        raw = getattr(self.importance, "compare_raw", False)  # scores already on one scale across groups (BN scales)
        normalised = (unit_scores / (1.0 if raw else unit_scores.abs().mean().clamp_min(1e-12))).sort().values
        cumulative = {key: [0, *torch.cumsum(counts[order], 0).tolist()] for key, counts in self._counts(group, units)}
        name = self.names[group[0].dep.target.module]
        return GroupPlan(group, name, units, ch_groups, order.tolist(), normalised, cumulative)

    def _channel_groups(self, group) -> int:
        """MetaPruner's channel grouping: the largest groups count of a grouped (not depthwise) layer in the group."""
        found = [1]
        for item in group:
            module, fn = item.dep.target.module, item.dep.handler
            pruner = self.graph.get_pruner_of_module(module)
            if module not in self.names or pruner is None or _depthwise(module):
                continue
            if isinstance(module, nn.MultiheadAttention):  # every head loses the same dimensions (as MetaPruner)
                found.append(module.num_heads)
                continue
            out = self.graph.is_out_channel_pruning_fn(fn)
            found.append(pruner.get_out_channel_groups(module) if out else pruner.get_in_channel_groups(module))
        return max(found)

    def _counts(self, group, units: int):
        """Per (module, side) touched by the group: how many of its channels each unit of the root carries."""
        layer_to_root: dict[tuple[nn.Module, str], dict[int, int]] = {}
        for item in group:
            module, fn = item.dep.target.module, item.dep.handler
            if isinstance(module, nn.Parameter):
                if module not in self.param_dims:
                    continue
            elif module not in self.names or not (isinstance(module, LAYER_TYPES) or _own_params(module)):
                continue
            out = self.graph.is_out_channel_pruning_fn(fn) or not isinstance(module, LAYER_TYPES)  # depthwise: both
            side = "out" if out else "in"
            pairs = zip(map(int, item.idxs), map(int, item.root_idxs), strict=True)
            layer_to_root.setdefault((module, side), {}).update(pairs)
        for key, mapping in layer_to_root.items():
            roots = torch.tensor(list(mapping.values()), dtype=torch.long) % units
            yield key, torch.bincount(roots, minlength=units)

    def counts(self, ratio: float) -> list[int]:
        """Units removed from each group at channel ratio `ratio` (uniform or global allocation, capped, rounded)."""
        if self.allocation == "uniform":
            keep = [int(plan.units * (1 - ratio)) for plan in self.plans]
        else:
            keep = [plan.units - k for plan, k in zip(self.plans, self._global_removed(ratio), strict=True)]
        return [plan.units - self._finish(plan.units, kept) for plan, kept in zip(self.plans, keep, strict=True)]

    def counts_at(self, ratios) -> list[int]:
        """Units removed from each group when group i loses `ratios[i]` of its channels (capped, rounded)."""
        if len(ratios) != len(self.plans):
            raise ValueError(f"expected {len(self.plans)} ratios (one per group), got {len(ratios)}")
        return [plan.units - self._finish(plan.units, int(round(plan.units * (1 - float(r)), 9)))
                for plan, r in zip(self.plans, ratios, strict=True)]  # fmt: skip

    def widths(self, counts: list[int]) -> dict[str, tuple[int, int]]:
        """{layer name: (input channels, output channels)} of every conv/linear layer the groups touch, after
        removing `counts` units per group (as `estimate` counts them)."""
        removed: dict[tuple[nn.Module, str], int] = {}
        for plan, k in zip(self.plans, counts, strict=True):
            for key, cumulative in plan.cumulative.items():
                removed[key] = removed.get(key, 0) + cumulative[k]
        return {
            self.names[m]: (cost.inputs - removed.get((m, "in"), 0), cost.out - removed.get((m, "out"), 0))
            for m, cost in self.costs.items()
            if isinstance(m, LAYER_TYPES) and m in self.names
        }

    def _global_removed(self, ratio: float) -> list[int]:
        total = len(self.all_normalised)
        n_pruned = total - int(total * (1 - ratio))
        if n_pruned <= 0:
            return [0] * len(self.plans)
        threshold = self.all_normalised[n_pruned - 1]
        return [int(torch.searchsorted(plan.normalised, threshold, right=True)) for plan in self.plans]

    def _finish(self, units: int, keep: int) -> int:
        """Kept units after rounding down to `round_to` and keeping at least 1 - max_ratio of the group."""
        floor = max(1, math.ceil(round(units * (1 - self.max_ratio), 9)))
        if self.round_to:
            keep -= keep % self.round_to
            floor = min(units, -(-floor // self.round_to) * self.round_to)
        return max(keep, floor)

    def estimate(self, counts: list[int]) -> dict[str, int]:
        """FLOPs, parameters and conv/linear weights of the model after removing `counts` units per group.

        Exact for conv/linear layers (any groups; depthwise ones lose inputs with outputs), batch norms and other
        layers whose parameters are per channel, given FLOPs counted as in metrics.flop_count.
        """
        removed: dict[tuple[nn.Module, str], int] = {}
        for plan, k in zip(self.plans, counts, strict=True):
            for key, cumulative in plan.cumulative.items():
                removed[key] = removed.get(key, 0) + cumulative[k]
        total = dict(self.fixed)
        for module, cost in self.costs.items():
            for key, value in _scaled(module, cost, removed.get((module, "out"), 0), removed.get((module, "in"), 0)):
                total[key] += value
        return total

    def ratio_for(self, target: Target) -> float:
        """The channel ratio that reaches `target`: given, or the smallest whose estimate (or timing) reaches it."""
        if isinstance(target, ChannelRatio):
            return target.value
        if isinstance(target, LatencyBudget):
            reached = self._latency_reached(target)
            return _smallest_ratio(reached, self.max_ratio, target, steps=8)
        key, limit = _limit(target, self.dense)
        return _smallest_ratio(lambda r: self.estimate(self.counts(r))[key] <= limit, self.max_ratio, target)

    def counts_for(self, target: Target) -> list[int]:
        """Units removed per group to reach `target`: the smallest ratio reaching it (ratio_for); then, for FLOPs,
        parameter and sparsity targets, single rounding units added back where they move the estimate least, while
        it stays within the target, until it is within a quarter of TOLERANCE of it or no unit fits. Still more than
        TOLERANCE away: a one-line warning with the nearest achievable values either side. `self.last_fit` keeps
        the target, its limit, the achieved estimate and the next one above the limit."""
        counts = self.counts(self.ratio_for(target))
        if isinstance(target, (ChannelRatio, LatencyBudget)):
            return counts
        key, limit = _limit(target, self.dense)
        counts, value, above = self._fill(counts, key, limit, limit / (1 + TOLERANCE / 4))
        self.last_fit = {"target": target.label(), "key": key, "limit": limit, "value": value, "next_above": above}
        if value < limit / (1 + TOLERANCE) and above is not None:
            warnings.warn(
                f"target {target.label()} cannot be reached within {TOLERANCE:.0%} with round_to "
                f"{self.round_to or 1}: nearest achievable {_achieved(target, key, self.dense, value)} and, "
                f"just short of the target, {_achieved(target, key, self.dense, above)}",
                stacklevel=3,
            )
        return counts

    def _fill(self, counts: list[int], key: str, limit: float, low: float) -> tuple[list[int], int, int | None]:
        """Bring the estimate of `key` into [`low`, `limit`] by single rounding units: add one back where it raises
        the estimate least while staying within `limit`; when none fits, add one back and remove one elsewhere if the
        pair lands closer within `limit`. Returns the counts, their estimate and the smallest estimate above `limit`
        that adding back one unit gives (None if no group can give any back)."""
        counts = list(counts)
        removed: dict[tuple[nn.Module, str], int] = {}
        for plan, k in zip(self.plans, counts, strict=True):
            for side, cumulative in plan.cumulative.items():
                removed[side] = removed.get(side, 0) + cumulative[k]
        value = self.estimate(counts)[key]
        modules = [sorted({m for m, _ in plan.cumulative}, key=id) for plan in self.plans]
        sharing: dict[nn.Module, set[int]] = {}
        for i, touched in enumerate(modules):
            for module in touched:
                sharing.setdefault(module, set()).add(i)

        def quantity(module, changes) -> int:
            out = removed.get((module, "out"), 0) + changes.get((module, "out"), 0)
            inputs = removed.get((module, "in"), 0) + changes.get((module, "in"), 0)
            return dict(_scaled(module, self.costs[module], out, inputs)).get(key, 0)

        def step(i: int, more: bool = False):
            """(change of the estimate, new count, changes per side) for one unit back (or, `more`, one more out)."""
            plan, k = self.plans[i], counts[i]
            kept = plan.units - k
            new_kept = self._finish(plan.units, kept - 1) if more else min(plan.units, kept + (self.round_to or 1))
            if new_kept == kept or (more and new_kept > kept):
                return None
            new_k = plan.units - new_kept
            changes = {side: c[new_k] - c[k] for side, c in plan.cumulative.items()}
            return sum(quantity(m, changes) - quantity(m, {}) for m in modules[i]), new_k, changes

        def take(i: int, entry) -> None:
            nonlocal value
            for side, change in entry[2].items():
                removed[side] += change
            counts[i], value = entry[1], value + entry[0]

        cache = {i: step(i) for i in range(len(self.plans))}
        above, swaps = None, 0
        while value < low:
            steps = [(entry[0], i) for i, entry in cache.items() if entry is not None]
            if not steps:
                return counts, value, None
            fitting = [entry for entry in steps if value + entry[0] <= limit]
            if fitting:
                i = min(fitting)[1]
                take(i, cache[i])
                changed = {i}
            else:
                above = value + min(steps)[0]
                pair = self._swap(steps, step, take, counts, value, limit) if swaps < 100 else None
                if pair is None:
                    break
                changed, swaps = set(pair), swaps + 1
            for j in {j for i in changed for module in modules[i] for j in sharing[module]}:
                cache[j] = step(j)
        return counts, value, above

    def _swap(self, adds, step, take, counts, value, limit) -> tuple[int, int] | None:
        """Add back one unit in a group and remove one in another: the pair whose estimate comes closest to `limit`
        without passing it (ranked by the sum of both changes, then checked exactly); None if no pair helps.
        `value` is the estimate now; `take(i, entry)` applies a step of `step(i, more)` to `counts`."""
        removes = [(entry[0], j) for j in range(len(self.plans)) if (entry := step(j, more=True)) is not None]
        pairs = sorted((a + r, i, j) for a, i in adds for r, j in removes if i != j and 0 < a + r <= limit - value)
        for _, i, j in reversed(pairs[-20:]):
            old_k, back = counts[i], step(i)
            take(i, back)
            out = step(j, more=True)
            if out is not None and 0 < back[0] + out[0] <= limit - value:
                take(j, out)
                return i, j
            take(i, (-back[0], old_k, {side: -change for side, change in back[2].items()}))
        return None

    def _latency_reached(self, target: LatencyBudget) -> Callable[[float], bool]:
        """reached(ratio): does removing `ratio` of every group meet the budget? Each candidate is timed in three
        alternating rounds with the dense model and held to the budget of that dense timing (a fraction of it, or
        fixed milliseconds), so load on a shared CPU that comes and goes moves both timings alike."""
        verdicts: dict[tuple[int, ...], bool] = {}

        def ready(counts: tuple[int, ...]) -> nn.Module:
            candidate = copy.deepcopy(self.model)
            self.apply(list(counts), candidate)
            return speed.inference_ready(candidate)

        dense = ready(tuple([0] * len(self.plans)))

        def reached(ratio: float) -> bool:
            counts = tuple(self.counts(ratio))
            if counts not in verdicts:
                dense_ms, candidate_ms = speed.alternating_ms(
                    dense, ready(counts), self.input_shape, target.batch_size, target.threads, 3, 0.05, True
                )
                verdicts[counts] = candidate_ms <= target.limit_ms(dense_ms)
            return verdicts[counts]

        return reached

    def apply(self, counts: list[int], model: nn.Module | None = None) -> list[tuple[str, list[int]]]:
        """Remove the planned channels from the planner's model (its importance's `reconstruct` hook first, if any),
        or from `model`, a copy of it (no hook). Returns (root name, removed root indices) per group that lost any."""
        removed = [(plan.name, plan.removed(k)) for plan, k in zip(self.plans, counts, strict=True) if k > 0]
        if model is not None:
            return replay(model, self.input_shape, removed)
        hook = getattr(self.importance, "reconstruct", None)
        if hook is not None:
            groups = [plan.group for plan, k in zip(self.plans, counts, strict=True) if k > 0]
            hook([(group, idxs) for group, (_, idxs) in zip(groups, removed, strict=True)])
        return replay(self.model, self.input_shape, removed, self.graph)


def replay(model: nn.Module, input_shape, removed: list, graph: tp.DependencyGraph | None = None) -> list:
    """Remove channels recorded by prune_to_target, [(root layer name, indices)], from `model` in place; returns them.

    `model` must have the architecture the record was taken on; `graph` is its dependency graph (built if None).
    """
    graph = graph or dependency_graph(model, input_shape)
    modules = dict(model.named_modules())
    for name, idxs in removed:
        out_channel_group(graph, modules[name], idxs).prune()
    sync_attributes(model)
    return removed


def out_channel_group(graph: tp.DependencyGraph, root: nn.Module, idxs) -> tp.Group:
    """The coupled group that removing output channels `idxs` of layer `root` removes (every layer it touches)."""
    return graph.get_pruning_group(root, graph.get_pruner_of_module(root).prune_out_channels, list(idxs))


def sync_attributes(model: nn.Module) -> None:
    """Attributes a forward pass reads that Torch-Pruning does not update: a torchvision VisionTransformer's
    `hidden_dim` (used to reshape the patch embedding) follows its patch projection's output channels."""
    for module in model.modules():
        projection = getattr(module, "conv_proj", None)
        if isinstance(getattr(module, "hidden_dim", None), int) and isinstance(projection, nn.Conv2d):
            module.hidden_dim = projection.out_channels


def _depthwise(module: nn.Module) -> bool:
    conv = isinstance(module, nn.modules.conv._ConvNd)
    return conv and 1 < module.groups == module.in_channels == module.out_channels


def _own_params(module: nn.Module) -> list[torch.Tensor]:
    return list(module.parameters(recurse=False))


def _layer_cost(module: nn.Module, graph: tp.DependencyGraph, flops: int, param_dims: dict) -> LayerCost:
    if isinstance(module, nn.Parameter):  # a parameter used outside a layer (ViT's class token, position embedding)
        return LayerCost(0, module.numel(), 0, 0, module.shape[param_dims[module]], 1)
    if isinstance(module, nn.MultiheadAttention):  # weights: in and out projections, quadratic in embed_dim
        quadratic = [module.in_proj_weight, module.q_proj_weight, module.k_proj_weight, module.v_proj_weight]
        weights = module.out_proj.weight.numel()
        square = sum(w.numel() for w in quadratic if w is not None) + weights
        params = sum(p.numel() for p in module.parameters())
        return LayerCost(flops, params, weights, square, module.embed_dim, module.embed_dim)
    params = sum(p.numel() for p in _own_params(module))
    if isinstance(module, LAYER_TYPES):
        bias = module.bias.numel() if module.bias is not None else 0
        out, inputs = graph.get_out_channels(module), graph.get_in_channels(module)
        return LayerCost(flops, params, module.weight.numel(), bias, out, 1 if _depthwise(module) else inputs)
    if any(p.ndim != 1 for p in _own_params(module)):
        raise ValueError(
            f"cannot count the parameters of a pruned {type(module).__name__}; known: conv, linear, "
            "and layers with one parameter per channel (batch norm, ...)"
        )
    return LayerCost(flops, params, 0, 0, graph.get_out_channels(module), 1)


def _scaled(module: nn.Module, cost: LayerCost, removed_out: int, removed_in: int):
    """(quantity, value) pairs: one module's FLOPs, parameters and conv/linear weights after it loses channels."""
    out = cost.out - removed_out
    if isinstance(module, nn.MultiheadAttention):  # `bias` holds the quadratic parameters; FLOPs scaled as them
        square = (out * out, cost.out * cost.out)
        linear = cost.params - cost.bias
        yield "flops", cost.flops * square[0] // square[1]
        yield "params", cost.bias * square[0] // square[1] + linear // cost.out * out
        yield "weights", cost.weights * square[0] // square[1]
        return
    if not isinstance(module, LAYER_TYPES):
        yield "params", cost.params // cost.out * out
        return
    inputs = cost.inputs - (0 if _depthwise(module) else removed_in)
    scale = (out * inputs, cost.out * cost.inputs)
    weights = cost.weights * scale[0] // scale[1]
    yield "flops", cost.flops * scale[0] // scale[1]
    yield "params", weights + cost.bias // cost.out * out + (cost.params - cost.weights - cost.bias)
    yield "weights", weights if isinstance(module, metrics.PRUNABLE_TYPES) else 0


def _limit(target: Target, dense: dict[str, int]) -> tuple[str, float]:
    """The estimated quantity a target bounds and its largest allowed value."""
    if isinstance(target, FlopsReduction):
        return "flops", dense["flops"] / target.value
    if isinstance(target, ParamReduction):
        return "params", dense["params"] / target.value
    return "weights", dense["weights"] * (1 - target.value)


def _achieved(target: Target, key: str, dense: dict[str, int], value: float) -> str:
    if isinstance(target, FlopsReduction):
        return f"{dense[key] / value:.3f}x FLOPs"
    if isinstance(target, ParamReduction):
        return f"{dense[key] / value:.3f}x parameters"
    return f"sparsity {1 - value / dense[key]:.4f}"


def _smallest_ratio(reached: Callable[[float], bool], high: float, target: Target, steps: int = 50) -> float:
    """Bisection for the smallest channel ratio in [0, high] at which `reached` (monotone) holds."""
    if reached(0.0):
        return 0.0
    if not reached(high):
        raise ValueError(f"target {target.label()} is out of reach: removing {high:g} of every group does not reach it")
    low = 0.0
    for _ in range(steps):
        mid = (low + high) / 2
        low, high = (low, mid) if reached(mid) else (mid, high)
    return high


def audit(model: nn.Module, input_shape) -> list[dict]:
    """One row per coupled group: its root layer, the layers coupled to it, channels, prunable or why not."""
    check_supported(model)
    names = {m: n for n, m in model.named_modules()}
    graph, protected = traced(model, input_shape)
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


def describe(model: nn.Module) -> dict[str, dict[str, int | list[int]]]:
    """The pruned architecture: every module's channel attributes (plain ints; a layer norm's shape as a list)."""
    described = {
        name: {a: int(getattr(m, a)) for a in SHAPE_ATTRS if isinstance(getattr(m, a, None), int)}
        for name, m in model.named_modules()
    }
    for name, m in model.named_modules():
        if isinstance(m, nn.LayerNorm):
            described[name]["normalized_shape"] = [int(d) for d in m.normalized_shape]
    return described


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
            setattr(modules[name], attr, tuple(value) if isinstance(value, list) else value)
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
