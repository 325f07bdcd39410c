"""Filter-ranking criteria of structured pruning: l1, l2, fpgm, hrank, apoz, thinet, random_filter.

Each method is registered as a factory `(model, calibration) -> tp.importance.Importance`. The importance maps a
Torch-Pruning group (the coupled layers that lose the same channels) to one score per channel of the group's root,
higher = keep.

Coupled groups. The "producers" of a group are the conv/linear layers whose output channels it prunes (one in a plain
network, several when a residual addition ties them); the "consumers" are the conv/linear layers whose input
channels it prunes. Weight criteria average the producers' per-filter scores (fixed layers such as the option-A
SelectShortcut left out); activation criteria measure the activation the consumers see when producers are coupled;
ThiNet sums its objective over the consumers.

Scores are each paper's raw per-layer values, not normalised across groups: they suit MetaPruner's default local
ranking (the same ratio in every group), as in the papers. Under global ranking they compare across groups only as
far as the criterion does: APoZ lies in [0, 1], but L1/L2 grow with fan-in, HRank with map size, ThiNet with group size.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from workbench.pruning.activations import (
    Statistic,
    batches,
    channel_statistics,
    check_calibration,
    device_of,
    evaluating,
    hooks,
    weight_shapes,
)
from workbench.pruning.registry import METHODS

_COMMON = {"family": "filter-ranking", "granularity": "filter", "structural": True}
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
        self.model, self.calibration, self.batch_size = model, calibration, batch_size
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
    producers tied by residual additions) the pruned channel is the post-addition tensor, so it is measured at the
    inputs of the group's conv consumers instead, averaged over them. Only those sites are measured, found from
    Torch-Pruning's dependency graph. With no measured site (e.g. a linear layer applied to tokens) the group falls
    back to L1 filter norms.
    """

    def __init__(self, model: nn.Module, calibration: torch.Tensor, statistic: Statistic, batch_size: int = 64):
        self.statistic = statistic
        super().__init__(model, calibration, batch_size)

    def collect(self):
        outputs, inputs = measurement_sites(self.model, self.calibration[:1])
        return channel_statistics(self.model, self.calibration, self.statistic, self.batch_size, outputs, inputs)

    def __call__(self, group) -> torch.Tensor | None:
        stats = self.current()
        side, items = activation_sites(group)
        table = stats.inputs if side == "in" else stats.outputs
        parts = [(table[it.dep.target.module][it.idxs], it.root_idxs) for it in items if it.dep.target.module in table]
        scores = group_mean(parts, len(group[0].idxs))
        return scores if scores is not None else self.fallback(group)


def activation_sites(group) -> tuple[str, list]:
    """Where channels are measured: ("in", conv consumers) if several producers are coupled, else ("out", producers)."""
    seen = [item for item in consumers(group) if isinstance(item.dep.target.module, nn.modules.conv._ConvNd)]
    return ("in", seen) if len(all_producers(group)) > 1 and seen else ("out", producers(group))


def measurement_sites(model: nn.Module, example: torch.Tensor) -> tuple[set[nn.Module], set[nn.Module]]:
    """The layers whose outputs and whose inputs ActivationImportance reads, from the model's dependency graph."""
    with evaluating(model, grad=True):  # eval mode: tracing must not update batch-norm statistics
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example.to(device_of(model)))
    sites: dict[str, set[nn.Module]] = {"out": set(), "in": set()}
    for layer in model.modules():
        if isinstance(layer, _LAYERS) and layer in graph.module2node:
            fn = tp.prune_linear_out_channels if isinstance(layer, nn.Linear) else tp.prune_conv_out_channels
            group = graph.get_pruning_group(layer, fn, list(range(graph.get_out_channels(layer))))
            side, items = activation_sites(group)
            sites[side].update(item.dep.target.module for item in items)
    return sites["out"], sites["in"]


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
    """

    def __init__(
        self,
        model: nn.Module,
        calibration: torch.Tensor,
        batch_size: int = 64,
        samples_per_image: int = 10,
        seed: int = 0,
    ):
        if samples_per_image < 1:
            raise ValueError(f"samples_per_image must be a positive integer, got {samples_per_image}")
        self.samples_per_image, self.seed = samples_per_image, seed
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
                block = torch.zeros(len(x), size, dtype=torch.float64)
                block.index_add_(1, torch.as_tensor(item.root_idxs, dtype=torch.long), x[:, item.idxs])
                blocks.append(block / math.sqrt(energy * len(x)))
        if not blocks:
            return self.fallback(group)
        return greedy_removal_order(torch.cat(blocks)).float()


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


@METHODS.register(
    "l1",
    **_COMMON,
    needs_data=False,
    cite="li2017pruning",
    summary="filters with the smallest L1 norm (sum |w|), averaged over residual-coupled layers",
)
def l1(model: nn.Module, calibration: torch.Tensor | None = None) -> tp.importance.Importance:
    """Li et al. (2017): score = L1 norm of the filter; `model` and `calibration` are not used."""
    return FilterNorm(p=1)


@METHODS.register(
    "l2",
    **_COMMON,
    needs_data=False,
    cite="li2017pruning",
    summary="filters with the smallest L2 norm, averaged over residual-coupled layers",
)
def l2(model: nn.Module, calibration: torch.Tensor | None = None) -> tp.importance.Importance:
    """Li et al. (2017), L2 variant: score = squared L2 norm of the filter; inputs are not used."""
    return FilterNorm(p=2)


@METHODS.register(
    "fpgm",
    **_COMMON,
    needs_data=False,
    cite="he2019filter",
    summary="filters nearest the geometric median of their layer (smallest summed distance to the others)",
)
def fpgm(model: nn.Module, calibration: torch.Tensor | None = None) -> tp.importance.Importance:
    """He et al. (2019): score = sum of Euclidean distances to the layer's other filters; inputs are not used."""
    return FilterGeometricMedian()


@METHODS.register(
    "hrank",
    **_COMMON,
    needs_data=True,
    cite="lin2020hrank",
    summary="filters whose post-ReLU feature maps have the lowest average matrix rank on calibration data",
)
def hrank(model: nn.Module, calibration: torch.Tensor | None, *, batch_size: int = 64) -> tp.importance.Importance:
    """Lin et al. (2020): score = mean over calibration images of rank(feature map) (see ActivationImportance)."""
    return ActivationImportance(model, check_calibration(calibration, "hrank"), feature_map_rank, batch_size)


@METHODS.register(
    "apoz",
    **_COMMON,
    needs_data=True,
    cite="hu2016network",
    summary="filters with the highest average percentage of zeros after ReLU on calibration data",
)
def apoz(model: nn.Module, calibration: torch.Tensor | None, *, batch_size: int = 64) -> tp.importance.Importance:
    """Hu et al. (2016): score = 1 - APoZ, the fraction of positive post-ReLU activations (see ActivationImportance)."""
    return ActivationImportance(model, check_calibration(calibration, "apoz"), nonzero_fraction, batch_size)


@METHODS.register(
    "thinet",
    **_COMMON,
    needs_data=True,
    cite="luo2017thinet",
    summary="channels whose greedy removal least changes the next layer's output on calibration data",
)
def thinet(
    model: nn.Module,
    calibration: torch.Tensor | None,
    *,
    batch_size: int = 64,
    samples_per_image: int = 10,
    seed: int = 0,
) -> tp.importance.Importance:
    """Luo et al. (2017): score = step of the greedy removal order (see ThiNet); sampling is seeded by `seed`."""
    return ThiNet(model, check_calibration(calibration, "thinet"), batch_size, samples_per_image, seed)


@METHODS.register(
    "random_filter",
    **_COMMON,
    needs_data=False,
    cite="li2022revisiting",
    summary="uniformly random filter scores (the baseline); torch.manual_seed fixes them",
)
def random_filter(model: nn.Module, calibration: torch.Tensor | None = None) -> tp.importance.Importance:
    """Li et al. (2022) baseline: tp.importance.RandomImportance, torch.rand from torch's global generator."""
    return tp.importance.RandomImportance()
