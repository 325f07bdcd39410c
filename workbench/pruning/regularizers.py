"""Sparsity regularisers applied during training, as `workbench.training.Callback`s that edit gradients.

- `BatchNormL1`: network slimming's lam * sign(gamma) on every batch-norm scale (Liu et al., 2017), through
  Torch-Pruning's `BNScalePruner.regularize` (the subgradient of lam * sum |gamma|).
- `GroupLasso`: Wen et al.'s (2016) structured sparsity, lam * sum_g ||W_g||_2 over filter-wise groups (a conv or
  linear layer's output rows) and channel-wise groups (its input slices), as the subgradient lam * W_g / ||W_g||
  (0 for a group already at zero). Written here: Torch-Pruning's GroupNormPruner.regularize is DepGraph's
  exponentially reweighted group L2, not Wen et al.'s group lasso.
- `GrowingL2`: Wang et al.'s (2021) GReg-1, an L2 penalty lam_t * W on the channels picked for removal only, lam_t
  rising by `step` every `interval` steps up to `ceiling` (reg_pruner.py of MingSun-Tse/Regularization-Pruning adds
  reg * W to the gradient of the picked filters, +1e-4 every 5 iterations up to 1). Written here: Torch-Pruning's
  GrowingRegPruner grows a penalty on every channel in proportion to its unimportance (their GReg-2-like variant).

Every regulariser can record the distribution of what it shrinks (`trace`), which the dense cache keeps.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch_pruning as tp

from workbench.metrics import prunable_layers
from workbench.training import Callback

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def batch_norms(model: nn.Module) -> list[nn.Module]:
    """The affine batch-norm layers of `model`."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]


def bn_scales(model: nn.Module) -> torch.Tensor:
    """|gamma| of every affine batch-norm channel, concatenated."""
    return torch.cat([m.weight.detach().abs().flatten() for m in batch_norms(model)])


def filter_norms(model: nn.Module, skip_last: bool = True) -> torch.Tensor:
    """||W_g||_2 of every filter-wise group (output row) of the conv/linear layers (the classifier's excluded)."""
    layers = [m for _, m in prunable_layers(model)]
    layers = layers[:-1] if skip_last else layers
    return torch.cat([m.weight.detach().flatten(1).norm(dim=1) for m in layers])


def quantiles(values: torch.Tensor) -> dict[str, float]:
    return {f"q{int(100 * q)}": float(values.quantile(q)) for q in QUANTILES} | {"max": float(values.max())}


class Traced(Callback):
    """A regulariser that records quantiles of what it shrinks every `every` steps (and at the last step seen)."""

    every = 10

    def measure(self, model: nn.Module) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, step: int, model: nn.Module) -> None:
        if step % self.every == 0:
            self.trace.append({"step": step + 1, **quantiles(self.measure(model))})

    @property
    def trace(self) -> list[dict]:
        if not hasattr(self, "_trace"):
            self._trace = []
        return self._trace


class BatchNormL1(Traced):
    """lam * sign(gamma) added to every batch-norm scale's gradient, by Torch-Pruning's BNScalePruner."""

    def __init__(self, lam: float, input_shape: tuple[int, ...]):
        self.lam, self.input_shape, self.pruner = lam, tuple(input_shape), None

    def after_backward(self, step: int, model: nn.Module) -> None:
        if self.pruner is None:  # built on a copy: tracing runs a forward pass and leaves the module in eval mode
            example = torch.zeros(2, *self.input_shape)
            self.pruner = tp.pruner.BNScalePruner(copy.deepcopy(model), example, reg=self.lam,
                                                  importance=tp.importance.BNScaleImportance())  # fmt: skip
        self.pruner.regularize(model, reg=self.lam)  # acts on `model`'s own batch-norm layers

    def measure(self, model):
        return bn_scales(model)


class GroupLasso(Traced):
    """lam * W_g / ||W_g|| added to the gradient of every filter-wise and/or channel-wise group.

    Filter groups: output rows of every conv/linear layer but the classifier; channel groups: input slices of every
    layer but the first (the data's channels stay).
    """

    def __init__(self, lam: float, groups: str = "both"):
        self.lam, self.groups = lam, groups

    def after_backward(self, step: int, model: nn.Module) -> None:
        if self.lam == 0:
            return
        layers = [m for _, m in prunable_layers(model)]
        with torch.no_grad():
            for i, layer in enumerate(layers):
                w, grad = layer.weight, layer.weight.grad
                if grad is None:
                    continue
                if self.groups in ("filter", "both") and i < len(layers) - 1:
                    grad.add_(self.lam * w / _norms(w, 0))
                if self.groups in ("channel", "both") and i > 0:
                    grad.add_(self.lam * w / _norms(w, 1))

    def measure(self, model):
        return filter_norms(model)


def _norms(w: torch.Tensor, dim: int) -> torch.Tensor:
    """||W_g|| broadcast over each group's weights (groups along `dim`: 0 filters, 1 channels); inf where 0."""
    other = [d for d in range(w.dim()) if d != dim]
    norm = w.pow(2).sum(dim=other, keepdim=True).sqrt()
    return torch.where(norm > 0, norm, torch.full_like(norm, float("inf")))


class GrowingL2(Traced):
    """GReg-1: lam_t * W on the picked output channels only; lam_t = min(ceiling, step * (1 + t // interval)).

    `picked` maps a module to the output-channel indices the coming removal takes (conv/linear rows and the
    batch-norm scales and shifts of the same channels).
    """

    def __init__(self, picked: dict[nn.Module, list[int]], step: float, interval: int, ceiling: float):
        self.picked, self.step, self.interval, self.ceiling = picked, step, interval, ceiling
        self.calls = 0

    def strength(self, calls: int) -> float:
        return min(self.ceiling, self.step * (1 + calls // self.interval))

    def after_backward(self, step: int, model: nn.Module) -> None:
        lam = self.strength(self.calls)
        self.calls += 1
        with torch.no_grad():
            for module, idxs in self.picked.items():
                index = torch.as_tensor(idxs, dtype=torch.long)
                for param in (module.weight, getattr(module, "bias", None)):
                    if param is not None and param.grad is not None:
                        param.grad[index] += lam * param[index]

    def measure(self, model):
        layers = [m for m in self.picked if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
        return torch.cat([m.weight.detach()[torch.as_tensor(self.picked[m])].flatten(1).norm(dim=1) for m in layers])
