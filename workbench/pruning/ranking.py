"""Filter-ranking criteria of structured pruning: l1, l2, fpgm, hrank, apoz, thinet, random_filter.

Each method is registered as a factory `(model, calibration, **hyperparameters) -> tp.importance.Importance`
(hyperparameters are keyword arguments, validated on construction). The importance maps a Torch-Pruning group (the
coupled layers that lose the same channels) to one score per channel of the group's root, higher = keep. Two optional
attributes tell `structural.prune_to_target` more: `global_comparable = False` (scores do not compare across
groups, so global allocation is refused) and `reconstruct(choices)`, called with the chosen channels before they are
removed, to adjust the weights that stay (ThiNet's least-squares rescaling).

Coupled groups. The "producers" of a group are the conv/linear layers whose output channels it prunes (one in a plain
network, several when a residual addition ties them); the "consumers" are the conv/linear layers whose input
channels it prunes. Weight criteria average the producers' per-filter scores (fixed layers such as the option-A
SelectShortcut left out); activation criteria measure the activation the consumers see when producers are coupled;
ThiNet sums its objective over the consumers.

Scores are each paper's raw per-layer values, not normalised across groups: they suit uniform allocation (the same
ratio in every group), as in the papers. Global allocation divides each group's scores by their mean first; ThiNet's
greedy positions do not survive that (every group's mean is the same), so it is refused there.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from workbench import checks
from workbench.pruning.activations import (
    Site,
    Statistic,
    Trace,
    activation_sources,
    site_statistics,
    trace,
)
from workbench.torchutil import batches, device_of, evaluating, hooks, weight_shapes

_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)


def all_producers(group) -> list:
    """The group's items that prune output channels (filters) of a conv or linear layer."""
    out_fns = (tp.prune_conv_out_channels, tp.prune_linear_out_channels)
    return [item for item in group if item.dep.handler in out_fns and None not in item.root_idxs]


def producers(group) -> list:
    """The producers whose filters are ranked: the trainable ones, unless none is.

    Fixed layers (weight.requires_grad False), such as the option-A SelectShortcut of the CIFAR ResNets whose filters
    are one-hot or zero, share the channels but carry no learnt filter, so they would only bias the average.
    """
    items = all_producers(group)
    return [item for item in items if item.dep.target.module.weight.requires_grad] or items


def consumers(group) -> list:
    """The group's items that prune input channels of a conv or linear layer."""
    in_fns = (tp.prune_conv_in_channels, tp.prune_linear_in_channels)
    return [item for item in group if item.dep.handler in in_fns and None not in item.root_idxs]


def group_mean(parts: list[tuple[torch.Tensor, list[int]]], size: int) -> torch.Tensor | None:
    """Average per-item scores onto the root's `size` channels via each item's root indices (None if no parts)."""
    if not parts:
        return None
    total = torch.zeros(size, dtype=torch.float64)
    count = torch.zeros(size, dtype=torch.float64)
    for values, root_idxs in parts:
        index = torch.as_tensor(root_idxs, dtype=torch.long)
        total.index_add_(0, index, values.detach().double().cpu())
        count.index_add_(0, index, torch.ones(len(index), dtype=torch.float64))
    return (total / count.clamp_min(1)).float()


def filters(layer: nn.Module) -> torch.Tensor:
    """The layer's filters as rows [out_channels, fan_in] (transposed convs store them in the second axis)."""
    weight = layer.weight.detach()
    if getattr(layer, "transposed", False):
        weight = weight.transpose(0, 1)
    return weight.flatten(1)


class FilterNorm(tp.importance.Importance):
    """||filter||_p^p of each filter (p=1: L1, p=2: squared L2), averaged over the producers of a coupled group.

    This is Torch-Pruning's GroupMagnitudeImportance (group_reduction="mean", normalizer=None) applied to the
    producers only: batch-norm scales and the consumers' input slices are not aggregated, as in Li et al. (2017).
    """

    def __init__(self, p: int):
        if p not in (1, 2):
            raise ValueError(f"p must be 1 or 2, got {p!r}")
        self.p = p
        self.magnitude = tp.importance.GroupMagnitudeImportance(
            p=p, group_reduction="mean", normalizer=None, target_types=list(_LAYERS)
        )

    def __call__(self, group) -> torch.Tensor | None:
        return self.magnitude(producers(group))


class FilterGeometricMedian(tp.importance.Importance):
    """FPGM: sum of Euclidean distances from each filter to the other filters of its layer, averaged over producers.

    Written here because tp.importance.FPGMImportance measures distances between |w|^p (signs dropped, so w and -w
    coincide) and also ranks consumers' input slices; the paper uses the filters themselves.
    """

    def __call__(self, group) -> torch.Tensor | None:
        parts = []
        for item in producers(group):
            rows = filters(item.dep.target.module).double()
            distances = torch.cdist(rows, rows).sum(1)  # float64, so the matmul form is accurate
            parts.append((distances[item.idxs], item.root_idxs))
        return group_mean(parts, len(group[0].idxs))


class Calibrated(tp.importance.Importance):
    """An importance computed from statistics of a calibration run, refreshed when the model's shapes change."""

    def __init__(self, model: nn.Module, calibration: torch.Tensor, batch_size: int = 64):
        self.batch_size = checks.integer("batch_size", batch_size, 1)
        self.model, self.calibration = model, calibration
        self.fallback = FilterNorm(p=1)
        self.refresh()

    def refresh(self) -> None:
        """Run the calibration batch again and keep new statistics (e.g. after an iterative pruning step)."""
        self.signature = weight_shapes(self.model)
        self.stats = self.collect()

    def current(self):
        """The statistics, recollected first if the model was pruned since they were taken."""
        if weight_shapes(self.model) != self.signature:
            self.refresh()
        return self.stats

    def collect(self):
        raise NotImplementedError


class ActivationImportance(Calibrated):
    """The mean of a per-channel statistic of post-ReLU activations on the calibration batch (HRank, APoZ).

    A channel is measured where it leaves its producer: ReLU(BatchNorm(conv output)), with the batch norm that
    directly follows the conv (ReLU applied by us, so models calling F.relu work). In a coupled group (several
    producers tied by residual additions) the pruned channel is the stream after each addition, so it is measured
    where the group's consumers read it: each distinct tensor once (consumers reading the same tensor, such as the
    next stage's first conv and its option-A shortcut, count once), fixed layers left out, and for a linear consumer
    fed through global pooling, the map before the pooling. The group's score averages its distinct sites. With no
    measured site (e.g. a linear layer applied to tokens) the group falls back to L1 filter norms.
    """

    def __init__(self, model: nn.Module, calibration: torch.Tensor, statistic: Statistic, batch_size: int = 64):
        self.statistic = statistic
        super().__init__(model, calibration, batch_size)

    def collect(self) -> dict[Site, torch.Tensor]:
        traced = trace(self.model, self.calibration[:1])
        sources = activation_sources(self.model, traced)
        self.resolved = {}
        for group in all_layer_groups(self.model, self.calibration[:1]):
            side, items = activation_sites(group)
            for item in items:
                layer = item.dep.target.module
                self.resolved[side, layer] = resolve_site(side, layer, traced, sources, len(group[0].idxs))
        sites = {site for site in self.resolved.values() if site is not None}
        return site_statistics(self.model, self.calibration, self.statistic, sites, self.batch_size)

    def sites(self, group) -> list[tuple[Site, object]]:
        """The distinct sites measured for `group`, each with the first group item that reads it."""
        self.current()
        side, items = activation_sites(group)
        chosen: dict[Site, object] = {}
        for item in items:
            site = self.resolved.get((side, item.dep.target.module))
            if site is not None:
                chosen.setdefault(site, item)
        return list(chosen.items())

    def __call__(self, group) -> torch.Tensor | None:
        stats = self.current()
        parts = [(stats[site][item.idxs], item.root_idxs) for site, item in self.sites(group) if site in stats]
        scores = group_mean(parts, len(group[0].idxs))
        return scores if scores is not None else self.fallback(group)


def activation_sites(group) -> tuple[str, list]:
    """Where channels are measured: ("in", consumers) if several producers are coupled, else ("out", producers)."""
    readers = consumers(group)
    return ("in", readers) if len(all_producers(group)) > 1 and readers else ("out", producers(group))


def resolve_site(side: str, layer: nn.Module, traced: Trace, sources: dict, channels: int) -> Site | None:
    """The canonical site measuring a group's `channels`: `layer`'s activation ("out") or what it reads ("in").

    None where there is nothing to measure: reads of fixed layers (weights that never train), a token-wise linear
    layer, a linear layer reading a flattened map. A linear consumer is measured at the map it pools, or at its input
    if that is already [N, channels].
    """
    if side == "out":
        output = traced.tensor.get(("out", layer))
        if output is None or (isinstance(layer, nn.Linear) and output.ndim != 2):
            return None
        return traced.canonical(("out", sources.get(layer, layer)))
    if not layer.weight.requires_grad:
        return None
    if not isinstance(layer, nn.Linear):
        return traced.canonical(("in", layer))
    x = traced.tensor.get(("in", layer))
    if x is None or x.ndim != 2 or x.shape[1] != channels:
        return None
    return traced.pooled_map(layer) or traced.canonical(("in", layer))


def all_layer_groups(model: nn.Module, example: torch.Tensor) -> list:
    """One Torch-Pruning group per conv/linear layer of `model` (its output channels as root), from a fresh graph."""
    with evaluating(model, grad=True):  # eval mode: tracing must not update batch-norm statistics
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example.to(device_of(model)))
    groups = []
    for layer in model.modules():
        if isinstance(layer, _LAYERS) and layer in graph.module2node:
            fn = tp.prune_linear_out_channels if isinstance(layer, nn.Linear) else tp.prune_conv_out_channels
            groups.append(graph.get_pruning_group(layer, fn, list(range(graph.get_out_channels(layer)))))
    return groups


def feature_map_rank(maps: torch.Tensor) -> torch.Tensor:
    """HRank statistic: the matrix rank of every HxW map of [N, C, H, W], summed over the N images.

    Same as torch.linalg.matrix_rank's default (singular values above max(H, W) * eps * the largest), but from
    svdvals directly, which is faster.
    """
    singular = torch.linalg.svdvals(maps)
    tolerance = max(maps.shape[-2:]) * torch.finfo(singular.dtype).eps * singular[..., :1]
    return (singular > tolerance).sum(-1).sum(0).double()


def nonzero_fraction(maps: torch.Tensor) -> torch.Tensor:
    """1 - APoZ statistic: the fraction of positive entries of every map of [N, C, H, W], summed over images."""
    return (maps > 0).flatten(2).double().mean(2).sum(0)


class ThiNet(Calibrated):
    """ThiNet (Luo et al., 2017): channels ranked by the greedy order that least changes the consumers' outputs.

    For each consumer (conv or linear layer taking the channels as input) the calibration run samples
    `samples_per_image` entries (output filter, position) of its pre-activation output per image and records each
    input channel's contribution x_c to them. Removal set T grows greedily by the channel minimising
    sum over consumers of ||sum_{c in T} x_c||^2 / ||sum_c x_c||^2 (each consumer's error relative to its output
    energy, so consumers of different scale weigh alike). Score = position in that order (first removed = 0).
    Groups without a measured consumer (e.g. channels that only reach a pooled output) fall back to L1 norms.

    With `rescale`, `reconstruct` applies the paper's least-squares step (§3.3) once the channels are chosen: each
    consumer's weights for kept channel c are multiplied by w_c, w = argmin_w sum_i (y_i - w^T x_hat_i)^2 over the
    sampled entries (y_i: the group's channels' summed contribution, x_hat_i: the kept channels' contributions).
    Scores are greedy positions within a group, so they do not compare across groups (`global_comparable`).
    """

    global_comparable = False

    def __init__(
        self,
        model: nn.Module,
        calibration: torch.Tensor,
        batch_size: int = 64,
        samples_per_image: int = 10,
        seed: int = 0,
        rescale: bool = True,
    ):
        self.samples_per_image = checks.integer("samples_per_image", samples_per_image, 1)
        self.seed = checks.integer("seed", seed, 0)
        if not isinstance(rescale, bool):
            raise ValueError(f"rescale must be True or False, got {rescale!r}")
        self.rescale = rescale
        super().__init__(model, calibration, batch_size)

    def collect(self) -> dict[nn.Module, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed)
        rows: dict[nn.Module, list[torch.Tensor]] = {}

        def record(module, args, output):
            x = sampled_contributions(module, args[0], output, generator, self.samples_per_image)
            if x is not None:
                rows.setdefault(module, []).append(x.double().cpu())

        layers = [m for m in self.model.modules() if isinstance(m, _LAYERS)]
        device = device_of(self.model)
        with evaluating(self.model), hooks([lambda m=m: m.register_forward_hook(record) for m in layers]):
            for batch in batches(self.calibration, self.batch_size):
                self.model(batch.to(device))
        return {m: torch.cat(r) for m, r in rows.items()}

    def __call__(self, group) -> torch.Tensor | None:
        contributions = self.current()
        size = len(group[0].idxs)
        blocks = []
        for item in consumers(group):
            x = contributions.get(item.dep.target.module)
            energy = float(x.sum(1).pow(2).mean()) if x is not None else 0.0
            if energy > 0:
                blocks.append(root_contributions(x, item, size) / math.sqrt(energy * len(x)))
        if not blocks:
            return self.fallback(group)
        return greedy_removal_order(torch.cat(blocks)).float()

    def reconstruct(self, choices: list[tuple[object, list[int]]]) -> None:
        """Least-squares rescaling of the consumers' kept input channels (no-op unless `rescale`).

        Args: choices: (group with full indices, root indices it will lose) per group, before anything is removed.
        """
        if not self.rescale:
            return
        contributions = self.current()
        for group, removed in choices:
            for item in consumers(group):
                layer, x = item.dep.target.module, contributions.get(item.dep.target.module)
                if x is not None and getattr(layer, "groups", 1) == 1:
                    scales = least_squares_scales(root_contributions(x, item, len(group[0].idxs)), removed)
                    scale_inputs(layer, item, scales)


def root_contributions(x: torch.Tensor, item, size: int) -> torch.Tensor:
    """A consumer's contributions [samples, its inputs] summed onto the group root's `size` channels."""
    block = torch.zeros(len(x), size, dtype=torch.float64)
    block.index_add_(1, torch.as_tensor(item.root_idxs, dtype=torch.long), x[:, item.idxs])
    return block


def least_squares_scales(x: torch.Tensor, removed: list[int]) -> torch.Tensor:
    """w minimising ||x.sum(1) - x[:, kept] @ w||^2 on contributions [samples, channels]; 1 for removed channels.

    Solved as w = 1 + d with the minimum-norm d, so a kept channel the samples never see keeps its weight.
    """
    kept = torch.ones(x.shape[1], dtype=torch.bool)
    kept[list(removed)] = False
    scales = torch.ones(x.shape[1], dtype=torch.float64)
    if kept.any() and not kept.all():
        residual = x[:, ~kept].sum(1, keepdim=True)
        scales[kept] += torch.linalg.lstsq(x[:, kept], residual, driver="gelsd").solution[:, 0]
    return scales


def scale_inputs(layer: nn.Module, item, scales: torch.Tensor) -> None:
    """Multiply the layer's weights for each input index of `item` by the scale of its root channel (in place)."""
    factor = torch.ones(layer.weight.shape[1], dtype=torch.float64)
    factor[torch.as_tensor(item.idxs, dtype=torch.long)] = scales[torch.as_tensor(item.root_idxs, dtype=torch.long)]
    shape = (1, -1) + (1,) * (layer.weight.ndim - 2)
    with torch.no_grad():
        layer.weight.mul_(factor.to(layer.weight).view(shape))


def greedy_removal_order(contributions: torch.Tensor) -> torch.Tensor:
    """ThiNet's greedy selection on contributions [samples, channels]: the step at which each channel is removed.

    Each step removes the channel c minimising ||sum_{j in T + c} x_j||^2 over the samples (ties: lowest index).
    """
    x = contributions.double()
    energy = x.pow(2).sum(0)
    removed_sum = torch.zeros(x.shape[0], dtype=torch.float64)
    available = torch.ones(x.shape[1], dtype=torch.bool)
    position = torch.empty(x.shape[1], dtype=torch.long)
    for step in range(x.shape[1]):
        cost = torch.where(available, energy + 2 * (removed_sum @ x), torch.inf)  # ||s + x_c||^2 - ||s||^2
        c = int(torch.argmin(cost))
        removed_sum += x[:, c]
        available[c] = False
        position[c] = step
    return position


def sampled_contributions(
    layer: nn.Module, x: torch.Tensor, output: torch.Tensor, generator: torch.Generator, per_image: int
) -> torch.Tensor | None:
    """Contributions [N * per_image, in_channels] of the input channels to random output entries of `layer`.

    Supports Conv1d/Conv2d (any groups, stride, dilation, padding mode) and linear layers on [N, F] inputs; returns
    None for other layers.
    """
    if isinstance(layer, nn.Linear) and x.ndim != 2:
        return None
    if not isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)) or getattr(layer, "transposed", False):
        return None
    index = sample_entries(output.shape, per_image, generator)
    return contributions(layer, x, tuple(i.to(x.device) for i in index))


def sample_entries(shape: torch.Size, per_image: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """`per_image` uniformly random entries (filter, position) per image of an output of `shape`: (n, k, *position)."""
    n = torch.arange(shape[0]).repeat_interleave(per_image)
    return (n, *(torch.randint(size, (len(n),), generator=generator) for size in shape[1:]))


def contributions(layer: nn.Module, x: torch.Tensor, index: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Each input channel's share x_c of the output entries `index` = (n, k, *position) of a conv or linear layer.

    For a conv, x_c = <W[k, c], patch of input channel c at the position>; the shares sum to output[index] - bias[k].
    """
    n, k, *position = index
    if isinstance(layer, nn.Linear):
        return layer.weight.detach()[k] * x[n]
    weight, x = _grouped_weight(layer), F.pad(x, _padding(layer), mode=_pad_mode(layer))
    stride, dilation = layer.stride, layer.dilation
    if isinstance(layer, nn.Conv1d):  # treat as a 1xL conv2d
        weight, x = weight.unsqueeze(2), x.unsqueeze(2)
        stride, dilation, position = (1, *stride), (1, *dilation), [torch.zeros_like(n), *position]
    y, w = position
    kh, kw = weight.shape[2:]
    rows = y[:, None] * stride[0] + torch.arange(kh, device=x.device) * dilation[0]
    cols = w[:, None] * stride[1] + torch.arange(kw, device=x.device) * dilation[1]
    channels = torch.arange(x.shape[1], device=x.device)
    patches = x[n[:, None, None, None], channels[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
    return (weight[k] * patches).sum((2, 3))


def _grouped_weight(conv: nn.Module) -> torch.Tensor:
    """The conv weight as [out, in, *kernel], zero between different groups of a grouped conv."""
    weight = conv.weight.detach()
    if conv.groups == 1:
        return weight
    out_per, in_per = conv.out_channels // conv.groups, conv.in_channels // conv.groups
    full = weight.new_zeros(conv.out_channels, conv.in_channels, *weight.shape[2:])
    for g in range(conv.groups):
        full[g * out_per : (g + 1) * out_per, g * in_per : (g + 1) * in_per] = weight[g * out_per : (g + 1) * out_per]
    return full


def _padding(conv: nn.Module) -> list[int]:
    """The conv's padding in F.pad order (last dimension first), for int, 'valid' and 'same' padding."""
    pads = []
    for dim in reversed(range(len(conv.kernel_size))):
        if conv.padding == "valid":
            left = right = 0
        elif conv.padding == "same":
            total = conv.dilation[dim] * (conv.kernel_size[dim] - 1)
            left, right = total // 2, total - total // 2
        else:
            left = right = conv.padding[dim]
        pads += [left, right]
    return pads


def _pad_mode(conv: nn.Module) -> str:
    return "constant" if conv.padding_mode == "zeros" else conv.padding_mode


class FilterTaylor(tp.importance.Importance):
    """Taylor first order for filters (Molchanov et al., 2019): (sum over the filter's weights of g * w)^2, with g the
    gradient of the cross-entropy on a labelled calibration batch, averaged over the producers of a coupled group.

    (The paper's preferred variant reads the batch-norm scale that follows the filter; this is its weight version.)
    Gradients are recomputed when the model's shapes change (iterative pruning).
    """

    def __init__(self, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 64):
        self.model, self.inputs, self.labels, self.batch_size = model, inputs, labels, batch_size
        self.signature, self.grads = None, {}

    def __call__(self, group) -> torch.Tensor | None:
        from workbench.pruning.saliency import gradients

        if weight_shapes(self.model) != self.signature:
            names = {m: n for n, m in self.model.named_modules()}
            by_name = gradients(self.model, self.inputs, self.labels, batch_size=self.batch_size)
            self.grads = {m: by_name[n] for m, n in names.items() if n in by_name}
            self.signature = weight_shapes(self.model)
        parts = []
        for item in producers(group):
            layer = item.dep.target.module
            contribution = (self.grads[layer] * layer.weight.detach()).flatten(1).sum(1) ** 2
            parts.append((contribution[item.idxs], item.root_idxs))
        return group_mean(parts, len(group[0].idxs))
