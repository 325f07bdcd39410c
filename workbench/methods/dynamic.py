"""The dynamic family: the trained network gets gates that decide, per input, which channels to compute.

- `fbs` (Gao et al., ICLR 2019, Feature Boosting and Suppression): a saliency predictor per gated convolution
  keeps the ceil(d*C) most salient channels of each input (winner-take-all) and scales them; target: the density d.
- `dgnet` (Li et al., ICCV 2021, Dynamic Dual Gating, channel branch): a two-layer predictor with Gumbel
  straight-through gates, trained with a loss that pulls the mean executed FLOPs to the budget; target: a FLOPs
  reduction, reached on average over inputs (each input may cost more or less).

Both start from the trained dense model (the pipeline's dense run), insert the gates at "pruning" and train gates
and weights together during fine-tuning, as both papers fine-tune pretrained models. Approximations: one
fine-tuning at the target density (the Mayo README suggests lowering the density gradually), DGNet without its
spatial gate, and the workbench's short budgets instead of the papers' hundreds of epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from workbench import checks
from workbench.gating import cost, sites
from workbench.hparams import Hparams, param
from workbench.methods.base import Context, Method, register
from workbench.targets import FlopsReduction, GateDensity


class Dynamic(Method):
    family = "dynamic"
    granularity = "channel"

    def check_model(self, model: nn.Module, hp) -> None:
        sites.check_gateable(model, self.name)


@dataclass(frozen=True)
class FBSHparams(Hparams):
    lasso: float = param(1e-8, "L1 weight on the kept saliencies, summed over batch and channels (Mayo: 1e-8)")
    start: str = param("trained", "trained: saliency bias and shift start at batch norm's scale, shift; mayo: 1, 0.1")

    def __post_init__(self):
        checks.number("lasso", self.lasso, 0.0)
        checks.choice("start", self.start, ("trained", "mayo"))


@register
class FeatureBoosting(Dynamic):
    name = "fbs"
    targets = (GateDensity,)
    cite = "gao2019dynamic"
    summary = "per input, a saliency predictor keeps and scales the top ceil(d*C) channels of each gated convolution"
    Hparams = FBSHparams

    def prune(self, model, target, hp, ctx: Context) -> None:
        sites.insert_gates(model, "fbs", density=self.check_target(target).value, start=hp.start)

    def finetune_callbacks(self, hp, ctx):
        return [cost.SaliencyLasso(hp.lasso)] if hp.lasso else []


@dataclass(frozen=True)
class DGNetHparams(Hparams):
    lbda: float = param(5.0, "weight of the FLOPs loss (F/F_dense - 1/reduction)^2 (DGNet's default 5)")
    gamma: float = param(1.0, "weight of the per-layer density bounds (DGNet's balance loss, default 1)")
    alpha: float = param(0.02, "the bounds relax as exp(-alpha * epoch) (DGNet's CIFAR setting 0.02)")
    reduction: int = param(4, "predictor hidden width = input channels / reduction (DGNet: 4)")
    temperature: float = param(2 / 3, "Gumbel-sigmoid temperature (DGNet: 2/3)")
    bias: float = param(2.0, "initial bias of the gate logits; 2 starts the gates open (DGNet's default)")
    anneal: float = param(0.5, "share of fine-tuning over which the Gumbel noise fades out (0: DGNet's constant noise)")

    def __post_init__(self):
        for name in ("lbda", "gamma", "alpha"):
            checks.number(name, getattr(self, name), 0.0)
        checks.integer("reduction", self.reduction, 1)
        checks.number("temperature", self.temperature, 0.0, open_low=True)
        checks.number("bias", self.bias)
        checks.number("anneal", self.anneal, 0.0, 1.0)


@register
class DynamicDualGating(Dynamic):
    name = "dgnet"
    targets = (FlopsReduction,)
    cite = "li2021dynamica"
    summary = "Gumbel channel gates trained with a loss pulling the mean executed FLOPs to the budget (DGNet, channels)"
    Hparams = DGNetHparams

    def prune(self, model, target, hp, ctx: Context) -> None:
        self.check_target(target)
        sites.insert_gates(model, "dgnet", reduction=hp.reduction, temperature=hp.temperature, bias=hp.bias)
        model.gate_spec["flops_target"] = 1.0 / target.value

    def finetune_callbacks(self, hp, ctx):
        per_epoch = ctx.extra.get("steps_per_epoch", 1)
        anneal = round(hp.anneal * ctx.extra.get("finetune_steps", 0))
        return [cost.FlopsBudget(ctx.input_shape, per_epoch, hp.lbda, hp.gamma, hp.alpha, anneal)]
