"""The regularization family: a penalty drives structures to zero during training, then they are removed physically.

- `slimming` (Liu et al., ICCV 2017): L1 on batch-norm scales during dense training, one global ranking of |gamma|.
- `ssl` (Wen et al., NeurIPS 2016): group lasso on filter-wise and channel-wise groups during dense training
  (subgradient, not the proximal step), filters ranked by their L2 norm.
- `greg` (Wang et al., ICLR 2021, GReg-1): on the trained model, pick the channels to remove by L1 norm, grow an L2
  penalty on them only during `reg_epochs` of extra training, then remove exactly those.

Removal goes through the dependency graph (coupled residual channels together) to the pipeline's FLOPs, parameter
or channel target, like every structured method. Approximations: the papers' schedules (slimming 160 epochs,
GReg's +1e-4 every 5 iterations up to 1 and 40,000 stabilising iterations) are shortened to the workbench's budgets;
the penalties and removals follow the papers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch_pruning as tp

from workbench import checks
from workbench.hparams import param
from workbench.methods.base import Context, register
from workbench.methods.ranking import FilterRanking, StructuredHparams
from workbench.pruning import merging, ranking, structural
from workbench.pruning.regularizers import BatchNormL1, GroupLasso, GrowingL2, batch_norms
from workbench.targets import ChannelRatio, FlopsReduction, ParamReduction

GROUPS = ("filter", "channel", "both")


class Regularized(FilterRanking):
    family = "regularization"
    targets = (FlopsReduction, ParamReduction, ChannelRatio)


class BatchNormScale(tp.importance.Importance):
    """|gamma| of each channel, averaged over the batch-norm layers of a coupled group; None for groups without BN.
    Raw scales compare across groups (`compare_raw`): network slimming ranks them all by one threshold."""

    compare_raw = True

    def __call__(self, group) -> torch.Tensor | None:
        scales = [
            item.dep.target.module.weight.detach().abs()[list(item.idxs)]
            for item in group
            if isinstance(item.dep.target.module, nn.modules.batchnorm._BatchNorm)
            and group.has_pruning_op(item.dep, item.idxs)
        ]
        return torch.stack(scales).mean(0) if scales else None


@dataclass(frozen=True)
class SlimmingHparams(StructuredHparams):
    lam: float = param(1e-4, "L1 strength on the batch-norm scales during dense training (Liu et al.: 1e-4, 1e-5)")
    allocation: str = param("global", "global: one ranking of |gamma| over all layers (the paper); uniform")

    def __post_init__(self):
        super().__post_init__()
        checks.number("lam", self.lam, 0.0)


@register
class Slimming(Regularized):
    name, cite, Hparams = "slimming", "liu2017learning", SlimmingHparams
    summary = "network slimming: L1 on batch-norm scales while training, channels of the smallest |gamma| removed"

    def check_model(self, model: nn.Module, hp) -> None:
        if not batch_norms(model):
            raise checks.ConfigError(
                f"method {self.name!r} regularises batch-norm scales and the model has no batch norm; "
                "accepted: models with BatchNorm layers (e.g. small_cnn, cnn1d, resnet20, vgg16_cifar)"
            )

    def training_callbacks(self, hp, ctx: Context) -> list:
        return [BatchNormL1(hp.lam, ctx.input_shape)]

    def importance(self, model, hp, ctx):
        return BatchNormScale()


@dataclass(frozen=True)
class SslHparams(StructuredHparams):
    lam: float = param(1e-3, "group-lasso strength (sum of the groups' L2 norms) during dense training")
    groups: str = param("both", "filter: output rows; channel: input slices; both (Wen et al.'s filter + channel)")

    def __post_init__(self):
        super().__post_init__()
        checks.number("lam", self.lam, 0.0)
        checks.choice("groups", self.groups, GROUPS)


@register
class Ssl(Regularized):
    name, cite, Hparams = "ssl", "wen2016learning", SslHparams
    summary = "structured sparsity learning: group lasso on filters and channels while training, smallest filters go"

    def training_callbacks(self, hp, ctx: Context) -> list:
        return [GroupLasso(hp.lam, hp.groups)]

    def importance(self, model, hp, ctx):
        return ranking.FilterNorm(p=2)


@dataclass(frozen=True)
class GregHparams(StructuredHparams):
    reg_epochs: int = param(4, "epochs of training with the growing penalty before removal")
    reg_lr: float = param(0.01, "learning rate of that training (cosine to 0)")
    step: float = param(0.05, "how much the penalty grows each `interval` steps (the paper: 1e-4)")
    interval: int = param(1, "steps between growths (the paper: 5)")
    ceiling: float = param(1.0, "the largest penalty (the paper: 1)")

    def __post_init__(self):
        super().__post_init__()
        checks.integer("reg_epochs", self.reg_epochs, 0)
        checks.number("reg_lr", self.reg_lr, 0.0)
        checks.number("step", self.step, 0.0)
        checks.integer("interval", self.interval, 1)
        checks.number("ceiling", self.ceiling, 0.0)


@register
class Greg(Regularized):
    name, cite, Hparams = "greg", "wang2021neural", GregHparams
    summary = "growing regularisation (GReg-1): L2 on the channels picked by L1 grows until they vanish, then removed"

    def importance(self, model, hp, ctx):
        return ranking.FilterNorm(p=1)

    def prune(self, model: nn.Module, target, hp: GregHparams, ctx: Context) -> list | None:
        step = self.step_target(model, target, ctx)
        if step is None:
            return None
        plan = self.planned_removal(model, step, hp, ctx)
        if hp.reg_epochs:
            if ctx.train is None:
                raise ValueError(f"{self.name} trains while pruning and needs the pipeline's context (ctx.train)")
            growing = GrowingL2(picked_channels(model, ctx.input_shape, plan), hp.step, hp.interval, hp.ceiling)
            ctx.train(model, hp.reg_epochs, hp.reg_lr, callbacks=[growing])
            ctx.extra["greg_trace"] = growing.trace
        return structural.replay(model, ctx.input_shape, plan)


def picked_channels(model: nn.Module, input_shape, plan) -> dict[nn.Module, list[int]]:
    """Every conv/linear/batch-norm module's output channels that `plan` ([(root name, indices)]) removes."""
    graph = structural.dependency_graph(model, input_shape)
    modules = dict(model.named_modules())
    picked: dict[nn.Module, set[int]] = {}
    for name, idxs in plan:
        group = structural.out_channel_group(graph, modules[name], idxs)
        for module, out in merging.producers(group, graph) + merging.batch_norm_after(group, graph):
            picked.setdefault(module, set()).update(out.values())
    return {m: sorted(v) for m, v in picked.items()}
