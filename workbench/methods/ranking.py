"""Filter ranking: score every channel of a coupled group, remove the lowest physically (Torch-Pruning DepGraph).

The criteria (Importance objects scoring a Torch-Pruning group) live in `workbench.pruning.ranking`; this file
gives each its typed hyperparameters and turns the pipeline's targets, measured against the dense model, into
targets for the model as it is now (after earlier iterative levels).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch_pruning as tp

from workbench import checks, metrics
from workbench.hparams import Hparams, param
from workbench.methods.base import Context, Method, get, register
from workbench.pruning import ranking, structural
from workbench.pruning.activations import check_calibration
from workbench.targets import (
    ChannelRatio,
    FlopsReduction,
    LatencyBudget,
    LatencyFraction,
    ParamReduction,
    Sparsity,
    Target,
)


@dataclass(frozen=True)
class StructuredHparams(Hparams):
    allocation: str = param("uniform", "uniform: every group loses the same fraction; global: one ranking")
    round_to: int = param(8, "keep channel counts multiples of this (0: no rounding); CPUs run multiples of 8 faster")
    max_ratio: float = param(0.95, "at most this fraction of any group's channels is removed")

    def __post_init__(self):
        checks.choice("allocation", self.allocation, structural.ALLOCATIONS)
        checks.integer("round_to", self.round_to, 0)
        checks.number("max_ratio", self.max_ratio, 0.0, 1.0, open_high=True)


@dataclass(frozen=True)
class CalibratedHparams(StructuredHparams):
    batch_size: int = param(64, "calibration images per forward pass while collecting statistics")

    def __post_init__(self):
        super().__post_init__()
        checks.integer("batch_size", self.batch_size, 1)


@dataclass(frozen=True)
class ThiNetHparams(CalibratedHparams):
    samples_per_image: int = param(10, "output entries sampled per calibration image and consumer layer")
    rescale: bool = param(True, "least-squares rescaling of the kept channels (ThiNet, section 3.3)")

    def __post_init__(self):
        super().__post_init__()
        checks.integer("samples_per_image", self.samples_per_image, 1)
        if self.allocation == "global":
            raise checks.ConfigError(
                "thinet scores are greedy removal positions within a group and do not compare across groups; "
                "use allocation='uniform'"
            )
        if not isinstance(self.rescale, bool):
            raise checks.ConfigError(f"rescale must be True or False, got {self.rescale!r}")


class FilterRanking(Method):
    """A filter-ranking criterion applied through structural.prune_to_target."""

    family, granularity, structural = "filter-ranking", "filter", True
    targets = (FlopsReduction, ParamReduction, Sparsity, ChannelRatio, LatencyBudget, LatencyFraction)
    Hparams = StructuredHparams

    def importance(self, model: nn.Module, hp, ctx: Context):
        """The criterion as a Torch-Pruning importance for `model` (scores per channel of a group, higher = keep)."""
        raise NotImplementedError

    def criterion(self, model: nn.Module, calibration: torch.Tensor | None = None, seed: int = 0, **hparams):
        """The importance for `model` outside a pipeline: calibration inputs, seed and hyperparameters by keyword."""
        data = None if calibration is None else (calibration, None)
        return self.importance(model, self.hparams(**hparams), Context((), 0, {}, seed, data))

    def prune(self, model: nn.Module, target: Target, hp: StructuredHparams, ctx: Context) -> list | None:
        """Remove channels to `target`; returns the removed channels per group (for replay), None if reached."""
        step = self.step_target(model, target, ctx)
        if step is None:
            return None
        importance = self.importance(model, hp, ctx)
        return structural.prune_to_target(
            model, ctx.input_shape, importance, step, hp.allocation, hp.round_to or None, hp.max_ratio
        )

    def step_target(self, model: nn.Module, target: Target, ctx: Context) -> Target | None:
        """`target` checked, and made relative to `model` as it is now (made traceable); None if already reached."""
        self.check_target(target)
        structural.make_traceable(model)
        return relative_target(model, target, ctx)

    def planned_removal(self, model: nn.Module, step: Target, hp: StructuredHparams, ctx: Context) -> list:
        """The channels `prune` would remove for `step`, planned on a copy: [(root layer name, indices)]."""
        importance = self.importance(model, hp, ctx)
        return structural.prune_to_target(
            copy.deepcopy(model), ctx.input_shape, importance, step, hp.allocation, hp.round_to or None, hp.max_ratio
        )


def calibration_of(ctx: Context, method: str) -> torch.Tensor:
    """The context's calibration inputs, checked (a one-line error if missing or not a batch)."""
    return check_calibration(ctx.calibration_inputs(method), method)


def relative_target(model: nn.Module, target: Target, ctx: Context) -> Target | None:
    """`target` (measured against the dense reference) as a target for `model` as it is now; None if reached."""
    ref = ctx.reference
    if isinstance(target, FlopsReduction):
        now = metrics.flop_count(model, ctx.input_shape)["flops"]
        factor = now / (ref["flops"] / target.value)
        return FlopsReduction(factor) if factor > 1 + 1e-9 else None
    if isinstance(target, ParamReduction):
        now = metrics.count_params(model)["params"]
        factor = now / (ref["params"] / target.value)
        return ParamReduction(factor) if factor > 1 + 1e-9 else None
    if isinstance(target, Sparsity):
        now = metrics.prunable_weight_count(model)
        left = 1 - (1 - target.value) * ref["prunable_weights"] / now
        return Sparsity(left) if left > 1e-9 else None
    if isinstance(target, ChannelRatio):
        before = ctx.extra.get("previous_channel_ratio", 0.0)
        left = 1 - (1 - target.value) / (1 - before)
        return ChannelRatio(left) if left > 1e-9 else None
    return target


@register
class L1(FilterRanking):
    name, cite = "l1", "li2017pruning"
    summary = "filters with the smallest L1 norm (sum |w|), averaged over residual-coupled layers"

    def importance(self, model, hp, ctx):
        return ranking.FilterNorm(p=1)


@register
class L2(FilterRanking):
    name, cite = "l2", "li2017pruning"
    summary = "filters with the smallest L2 norm, averaged over residual-coupled layers"

    def importance(self, model, hp, ctx):
        return ranking.FilterNorm(p=2)


@register
class Fpgm(FilterRanking):
    name, cite = "fpgm", "he2019filter"
    summary = "filters nearest the geometric median of their layer (smallest summed distance to the others)"

    def importance(self, model, hp, ctx):
        return ranking.FilterGeometricMedian()


class ActivationCriterion(FilterRanking):
    """A criterion from a per-channel statistic of post-ReLU activations on calibration data."""

    needs_data, Hparams = True, CalibratedHparams
    statistic = None  # maps activations [N, C, H, W] to a [C] statistic summed over images

    def importance(self, model, hp, ctx):
        statistic = type(self).statistic
        return ranking.ActivationImportance(model, calibration_of(ctx, self.name), statistic, hp.batch_size)


@register
class HRank(ActivationCriterion):
    name, cite, statistic = "hrank", "lin2020hrank", staticmethod(ranking.feature_map_rank)
    summary = "filters whose post-ReLU feature maps have the lowest average matrix rank on calibration data"


@register
class Apoz(ActivationCriterion):
    name, cite, statistic = "apoz", "hu2016network", staticmethod(ranking.nonzero_fraction)
    summary = "filters with the highest average percentage of zeros after ReLU on calibration data"


@register
class ThiNet(FilterRanking):
    name, cite, needs_data, Hparams = "thinet", "luo2017thinet", True, ThiNetHparams
    summary = "channels whose greedy removal least changes the next layer's output on calibration data"

    def importance(self, model, hp, ctx):
        calibration = calibration_of(ctx, self.name)
        return ranking.ThiNet(model, calibration, hp.batch_size, hp.samples_per_image, ctx.seed, hp.rescale)


@register
class RandomFilter(FilterRanking):
    name, cite = "random_filter", "li2022revisiting"
    summary = "uniformly random filter scores (the baseline), drawn from the run's seeded generator"

    def importance(self, model, hp, ctx):
        return SeededRandom(ctx.seed)


class SeededRandom(tp.importance.Importance):
    """Uniformly random scores from a generator of its own, so the run's seed alone fixes them."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, group) -> torch.Tensor:
        return torch.rand(len(group[0].idxs), generator=self.generator)


def agreement(model: nn.Module, bundle, criteria, channel_ratio: float, seed: int = 0, calibration_size: int = 128):
    """Jaccard overlap of the channels each pair of criteria removes from `model` at one channel ratio (uniform).

    Returns a square DataFrame indexed by criterion; two random choices of a fraction r overlap by about r / (2 - r).
    """
    import copy

    import pandas as pd

    from workbench import data as wdata
    from workbench.training import seed_everything

    calibration = wdata.calibration_batch(bundle, calibration_size, seed=seed)
    ctx = Context(bundle.input_shape, bundle.num_classes, {}, seed, calibration)
    chosen = {}
    for name in criteria:
        method = get(name)
        seed_everything(seed)
        trial = structural.make_traceable(copy.deepcopy(model)).eval()
        importance = method.importance(trial, method.hparams(), ctx)
        removed = structural.prune_to_ratio(trial, bundle.input_shape, importance, channel_ratio)
        chosen[name] = {(layer, i) for layer, idxs in removed for i in idxs}
    names = list(chosen)
    table = [[len(chosen[a] & chosen[b]) / max(1, len(chosen[a] | chosen[b])) for b in names] for a in names]
    return pd.DataFrame(table, index=names, columns=names)
