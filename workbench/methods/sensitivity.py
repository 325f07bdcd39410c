"""The sensitivity family: how much does the loss change when a weight (or a filter) goes?

OBD (Hessian diagonal), layer-wise OBS with weight updates, Taylor first order (weights and filters), and the
pruning-at-initialisation criteria SNIP, GraSP and SynFlow; plus the per-layer sensitivity scan used to allocate
per-layer ratios. Any of them runs after training (default) or at initialisation (`prune_at="init"`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn as nn
from torch.nn.utils import prune

from workbench import checks
from workbench.hparams import Hparams, param
from workbench.methods.base import METHODS, Context, Method, oriented, register
from workbench.methods.ranking import CalibratedHparams, FilterRanking, calibration_of
from workbench.metrics import prunable_layers
from workbench.pruning import obs, ranking, saliency, sensitivity_scan
from workbench.pruning.masks import extra_to_prune, prune_global
from workbench.targets import Sparsity

SCOPES = ("global", "layer")


@dataclass(frozen=True)
class ScoreHparams(Hparams):
    scope: str = param("global", "global: one threshold over all layers; layer: every layer at the target")
    batch_size: int = param(64, "calibration examples per forward/backward pass")

    def __post_init__(self):
        checks.choice("scope", self.scope, SCOPES)
        checks.integer("batch_size", self.batch_size, 1)


class ScoreMethod(Method):
    """Masks the lowest per-weight scores (globally or per layer); subclasses compute the scores."""

    family, granularity, targets, needs_data, Hparams = "sensitivity", "weight", (Sparsity,), True, ScoreHparams
    invertible = True

    def scores(self, model: nn.Module, hp, ctx: Context) -> dict[str, object]:
        """{layer name: score tensor like the weight}; higher = keep."""
        raise NotImplementedError

    def prune(self, model: nn.Module, target: Sparsity, hp, ctx: Context) -> None:
        self.check_target(target)
        mask_by_scores(model, oriented(self.scores(model, hp, ctx), ctx), target.value, hp.scope)

    def labelled(self, ctx: Context):
        x = calibration_of(ctx, self.name)
        return x, ctx.calibration[1]


def mask_by_scores(model: nn.Module, scores: dict, sparsity: float, scope: str) -> None:
    """Zero the lowest-scoring weights to `sparsity`: one global threshold, or every layer at `sparsity`.

    Scores are signed where the criterion is (GraSP): the lowest *signed* scores go, as in the reference code
    (Synaptic-Flow keeps score > threshold). torch.nn.utils.prune ranks |score|, so signed scores are first shifted
    by their common minimum, which keeps their order.
    """
    lowest = min(float(s.min()) for s in scores.values())
    if lowest < 0:
        scores = {n: s - lowest for n, s in scores.items()}
    layers = dict(prunable_layers(model))
    if scope == "global":
        prune_global(model, sparsity, scores={layers[n]: s for n, s in scores.items()})
        return
    for name, layer in layers.items():
        prune.l1_unstructured(layer, "weight", amount=extra_to_prune([layer], sparsity), importance_scores=scores[name])


@dataclass(frozen=True)
class ObdHparams(ScoreHparams):
    hessian: str = param("fisher", "Hessian diagonal: fisher (Gauss-Newton/empirical Fisher), hutchinson or exact")
    samples: int = param(16, "Rademacher vectors of the Hutchinson estimator")
    max_exact: int = param(4096, "largest layer (weights) whose exact Hessian block is computed")

    def __post_init__(self):
        super().__post_init__()
        checks.choice("hessian", self.hessian, saliency.HESSIAN_MODES)
        checks.integer("samples", self.samples, 1)
        checks.integer("max_exact", self.max_exact, 1)


@register
class Obd(ScoreMethod):
    name, cite, Hparams = "obd", "lecun1990optimal", ObdHparams
    summary = "Optimal Brain Damage: saliency 1/2 h_ii w_i^2 with a chosen estimate of the Hessian diagonal"

    def scores(self, model, hp, ctx):
        x, y = self.labelled(ctx)
        return saliency.obd(model, x, y, hp.hessian, samples=hp.samples, seed=ctx.seed, max_exact=hp.max_exact)


@register
class Taylor(ScoreMethod):
    name, cite = "taylor", "molchanov2019importance"
    summary = "Taylor first order: (g w)^2 per weight, averaged over calibration mini-batches"

    def scores(self, model, hp, ctx):
        x, y = self.labelled(ctx)
        return saliency.taylor(model, x, y, batch_size=hp.batch_size)


@register
class Snip(ScoreMethod):
    name, cite = "snip", "lee2019snip"
    summary = "SNIP connection sensitivity |g w| on a labelled batch (meant for initialisation)"

    def scores(self, model, hp, ctx):
        x, y = self.labelled(ctx)
        return saliency.snip(model, x, y, batch_size=hp.batch_size)


@dataclass(frozen=True)
class GraspHparams(ScoreHparams):
    temperature: float = param(200.0, "the logits are divided by this before the loss (as in the authors' code)")

    def __post_init__(self):
        super().__post_init__()
        checks.number("temperature", self.temperature, 0.0)


@register
class Grasp(ScoreMethod):
    name, cite, Hparams = "grasp", "wang2020picking", GraspHparams
    summary = "GraSP: gradient signal preservation, score w (H g); the lowest go, so gradient flow stays large"

    def scores(self, model, hp, ctx):
        x, y = self.labelled(ctx)
        return saliency.grasp(model, x, y, batch_size=hp.batch_size, temperature=hp.temperature)


@dataclass(frozen=True)
class SynflowHparams(Hparams):
    rounds: int = param(100, "pruning rounds; the kept fraction shrinks exponentially to the target")

    def __post_init__(self):
        checks.integer("rounds", self.rounds, 1)


@register
class Synflow(Method):
    family, granularity, targets, Hparams = "sensitivity", "weight", (Sparsity,), SynflowHparams
    name, cite, invertible = "synflow", "tanaka2020pruning", True
    summary = "SynFlow: data-free iterative pruning by synaptic flow |w dR/dw|, R the all-ones output of |W|"

    def scores(self, model, hp, ctx: Context):
        """One round's synaptic-flow scores (the iterative pruning recomputes them every round)."""
        return saliency.synflow(model, ctx.input_shape)

    def prune(self, model, target: Sparsity, hp, ctx: Context) -> None:
        self.check_target(target)
        start = 1 - sum(float((m.weight != 0).sum()) for _, m in prunable_layers(model)) / sum(
            m.weight.numel() for _, m in prunable_layers(model)
        )
        scores = saliency.synflow_scorer(model, ctx.input_shape)
        for k in range(1, hp.rounds + 1):
            kept = (1 - start) * ((1 - target.value) / (1 - start)) ** (k / hp.rounds)
            mask_by_scores(model, oriented(scores(), ctx), 1 - kept, "global")


@dataclass(frozen=True)
class ObsHparams(Hparams):
    solver: str = param("sparsegpt", "sparsegpt (blocked OBS updates, fast) or greedy (exact OBS order, small layers)")
    damp: float = param(0.01, "damping added to the layer Hessian, as a fraction of its mean diagonal")
    batch_size: int = param(64, "calibration examples per forward pass while collecting layer inputs")
    update: bool = param(True, "apply the OBS correction to the remaining weights (False: OBS's mask alone)")
    block: int = param(1, "sparsegpt: columns whose weights are chosen together (SparseGPT uses 128 on large layers)")

    def __post_init__(self):
        checks.choice("solver", self.solver, obs.OBS_SOLVERS)
        if not isinstance(self.update, bool):
            raise checks.ConfigError(f"update must be True or False, got {self.update!r}")
        checks.number("damp", self.damp, 0.0)
        checks.integer("block", self.block, 1)
        checks.integer("batch_size", self.batch_size, 1)


@register
class Obs(Method):
    family, granularity, targets, needs_data, Hparams = "sensitivity", "weight", (Sparsity,), True, ObsHparams
    name, cite = "obs", "hassibi1993second"
    summary = "Optimal Brain Surgeon, layer-wise: remove w_q^2/[H^-1]_qq smallest and update the other weights"

    def scores(self, model, hp, ctx: Context):
        """The cost w_q^2 / [H^-1]_qq of removing each weight alone, before any update (for comparisons)."""
        return obs.first_step_scores(model, calibration_of(ctx, self.name), hp.damp, hp.batch_size)

    def prune(self, model, target: Sparsity, hp, ctx: Context) -> None:
        self.check_target(target)
        x = calibration_of(ctx, self.name)
        obs.obs_prune(model, x, target.value, hp.damp, hp.batch_size, hp.solver, hp.update, hp.block)


@dataclass(frozen=True)
class ScanHparams(Hparams):
    ratios: tuple = param((0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.98), "ratios each layer is pruned to alone in the scan")

    def __post_init__(self):
        ratios = tuple(self.ratios) if isinstance(self.ratios, (list, tuple)) else None
        if not ratios:
            raise checks.ConfigError(f"ratios must be a non-empty list of numbers in [0, 1), got {self.ratios!r}")
        for r in ratios:
            checks.fraction("scan ratio", r)
        object.__setattr__(self, "ratios", ratios)


@register
class SensitivityAllocation(Method):
    family, granularity, targets, Hparams = "sensitivity", "weight", (Sparsity,), ScanHparams
    name, cite, needs_validation = "sensitivity_allocation", "li2017pruning", True
    summary = "per-layer ratios from a sensitivity scan (each layer pruned alone, validation accuracy), then magnitude"

    def prune(self, model, target: Sparsity, hp, ctx: Context) -> None:
        self.check_target(target)
        if ctx.validation is None or not len(ctx.validation[0]):
            raise ValueError("sensitivity_allocation needs a validation split (val_fraction > 0)")
        table = sensitivity_scan.scan(model, *ctx.validation, hp.ratios)
        ratios = sensitivity_scan.allocate(table, target.value)
        for name, layer in prunable_layers(model):
            prune.l1_unstructured(layer, "weight", amount=extra_to_prune([layer], ratios[name]))


@register
class TaylorFilter(FilterRanking):
    family, name, cite, needs_data, Hparams = (
        "sensitivity",
        "taylor_filter",
        "molchanov2019importance",
        True,
        (CalibratedHparams),
    )
    summary = "filters with the smallest (sum of g w over the filter)^2, removed physically"

    def importance(self, model, hp, ctx):
        x = calibration_of(ctx, self.name)
        return ranking.FilterTaylor(model, x, ctx.calibration[1], hp.batch_size)


def criterion_scores(model: nn.Module, names, bundle, calibration_size: int = 128, seed: int = 0):
    """{criterion: {layer: per-weight score}} on `model` with default hyperparameters and a labelled calibration
    batch from the training split, for every named method with per-weight scores, plus |w| ("magnitude")."""
    from workbench import data as wdata

    calibration = wdata.calibration_batch(bundle, calibration_size, seed=seed)
    validation = wdata.calibration_batch(bundle, len(bundle.val), seed=seed, split="val")
    ctx = Context(bundle.input_shape, bundle.num_classes, {}, seed, calibration, validation)
    out = {}
    for name in names:
        method = METHODS.get(name)
        if hasattr(method, "scores"):
            out[name] = method.scores(model, method.hparams(), ctx)
    out["magnitude"] = {n: m.weight.detach().abs() for n, m in prunable_layers(model)}
    return out


def rank_correlation(scores: dict[str, dict[str, object]]):
    """Spearman correlation between criteria over every conv/linear weight (a criteria x criteria DataFrame)."""
    columns = {name: torch.cat([s.flatten().double() for s in by_layer.values()]).numpy() for name, by_layer in
               scores.items()}  # fmt: skip
    return pd.DataFrame(columns).corr(method="spearman")


def dense_scan(model: nn.Module, bundle, ratios) -> object:
    """The sensitivity scan of `model` on the whole validation split (a layer x ratio table)."""
    from workbench import data as wdata

    x, y = wdata.calibration_batch(bundle, len(bundle.val), split="val")
    return sensitivity_scan.scan(model, x, y, ratios)
