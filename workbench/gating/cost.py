"""What each input costs a gated model, counted from the gates' decisions, and the loss that budgets it.

The count is the work the skipping execution does on that input (torch.utils.flop_counter's convention, 2 FLOPs
per multiply-add): each gated convolution computes its active output channels from the active input channels of
its producer, each predictor reads the active inputs, each consumer reads the active channels, and every other
layer runs in full. Tested: equal to flop_counter on the skipping execution of one input, and to flop_counter on
the masked model when every channel is on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from workbench import metrics
from workbench.gating.sites import gated_units
from workbench.gating.units import CompactInput
from workbench.training import Callback


@dataclass
class Costs:
    """Multiply-adds of a gated model that do not depend on the input, and per-channel costs of the gated layers."""

    static_macs: float  # layers that always run in full
    dense_macs: float  # the same model without gates, every channel computed
    unit_macs: dict  # unit -> multiply-adds per (input channel x output channel) of its convolution
    consumer_macs: dict  # CompactInput -> multiply-adds per input channel


def costs(model: nn.Module, input_shape: tuple[int, ...]) -> Costs:
    """The input-independent costs of `model` (one forward pass on zeros records the output sizes)."""
    units = [u for _, u in gated_units(model)]
    consumers = [m for m in model.modules() if isinstance(m, CompactInput)]
    out_size = {}
    layers = [u.conv for u in units] + [c.layer for c in consumers]
    hooks = [layer.register_forward_hook(lambda m, i, o: out_size.__setitem__(m, o[0, 0].numel())) for layer in layers]
    try:
        total = metrics.flop_count(model, input_shape)["flops"] / 2
    finally:
        for h in hooks:
            h.remove()
    unit_macs = {u: out_size[u.conv] * math.prod(u.conv.kernel_size) for u in units}
    consumer_macs = {}
    for c in consumers:
        layer = c.layer
        if isinstance(layer, nn.Linear):
            consumer_macs[c] = c.per_channel * layer.out_features
        else:
            consumer_macs[c] = out_size[layer] * math.prod(layer.kernel_size) * layer.out_channels
    full_units = sum(m * u.conv.in_channels * u.out_channels for u, m in unit_macs.items())
    full_predictors = sum(float(u.predictor_macs(torch.tensor(float(u.conv.in_channels)))) for u in units)
    full_consumers = sum(m * c.producer.out_channels for c, m in consumer_macs.items())
    static = total - full_units - full_predictors - full_consumers
    return Costs(static, static + full_units + full_consumers, unit_macs, consumer_macs)


def executed_macs(model: nn.Module, cost: Costs) -> torch.Tensor:
    """(B,) multiply-adds each input of the last forward pass executes, from the units' `last_mask` (keeps the
    gradients of the masks, so a loss can budget it)."""
    on = {u: u.last_mask.sum(1).to(torch.float64) for u in cost.unit_macs}  # float32 loses counts above 2**24
    total = torch.as_tensor(cost.static_macs, dtype=torch.float64)
    for u, per in cost.unit_macs.items():
        inputs_on = on[u.producer] if u.producer is not None else torch.full_like(on[u], u.conv.in_channels)
        total = total + per * inputs_on * on[u] + u.predictor_macs(inputs_on)
    for c, per in cost.consumer_macs.items():
        total = total + per * on[c.producer]
    return total


@torch.no_grad()
def per_input_flops(model: nn.Module, x: torch.Tensor, cost: Costs | None = None) -> torch.Tensor:
    """(B,) FLOPs each input of the batch `x` executes (eval mode, masked execution)."""
    cost = cost or costs(model, tuple(x.shape[1:]))
    was_training = model.training
    model.eval()
    model(x)
    model.train(was_training)
    return 2 * executed_macs(model, cost).to(torch.float64)


@torch.no_grad()
def gate_activity(model: nn.Module, loader) -> dict[str, list[float]]:
    """{unit name: fraction of the inputs each output channel is on for}, over every batch of `loader`."""
    was_training = model.training
    model.eval()
    units = gated_units(model)
    sums = {name: torch.zeros(u.out_channels, dtype=torch.float64) for name, u in units}
    count = 0
    for x, _ in loader:
        model(x)
        for name, u in units:
            sums[name] += u.last_mask.sum(0).double()
        count += len(x)
    model.train(was_training)
    return {name: (s / count).tolist() for name, s in sums.items()}


def uniform_density(cost: Costs, flops_ratio: float) -> float:
    """The channel density that, in every gated layer at once, executes `flops_ratio` of the dense FLOPs (bisection
    on the cost model; 1.0 if even all channels on stay under the ratio)."""

    def ratio(density: float) -> float:
        total = cost.static_macs
        for u, per in cost.unit_macs.items():
            inputs_on = u.producer.out_channels * density if u.producer is not None else u.conv.in_channels
            total += per * inputs_on * u.out_channels * density + float(u.predictor_macs(torch.tensor(inputs_on)))
        total += sum(per * c.producer.out_channels * density for c, per in cost.consumer_macs.items())
        return total / cost.dense_macs

    if ratio(1.0) <= flops_ratio:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if ratio(mid) < flops_ratio else (low, mid)
    return (low + high) / 2


class FlopsBudget(Callback):
    """DGNet's loss terms (lfr-0531/DGNet, regularization.py), channel branch:

        lbda * (F / F_dense - d)^2                                   F: mean executed FLOPs of the batch, gates included
        gamma * mean_l [relu(p t - rho_l)^2 + relu(rho_l - 1 + p - p t)^2]  rho_l: layer l's mean channel density

    d is the model's `gate_spec["flops_target"]`; t the uniform density meeting it (DGNet: sqrt(d), its spatial and
    channel gates sharing the budget); p = exp(-alpha * epoch) relaxes the per-layer bounds during training
    (DGNet's ExpAnnealing from 1 to 0). A trace of F / F_dense every 10 steps is kept.
    """

    def __init__(self, input_shape, steps_per_epoch: int, lbda: float, gamma: float, alpha: float,
                 anneal_steps: int = 0):  # fmt: skip
        self.input_shape, self.steps_per_epoch = tuple(input_shape), max(1, steps_per_epoch)
        self.anneal_steps = anneal_steps
        self.lbda, self.gamma, self.alpha = lbda, gamma, alpha
        self.cost: Costs | None = None
        self.first_step: int | None = None
        self.trace: list[dict] = []

    def on_loss(self, step, model, loss):
        if self.cost is None:
            self.cost = costs(model, self.input_shape)
            self.first_step = step
            self.layer_target = uniform_density(self.cost, model.gate_spec["flops_target"])
        target = model.gate_spec["flops_target"]
        if self.anneal_steps:
            for u in self.cost.unit_macs:
                u.noise = max(0.0, 1.0 - (step - self.first_step) / self.anneal_steps)
        ratio = executed_macs(model, self.cost).mean() / self.cost.dense_macs
        p = math.exp(-self.alpha * ((step - self.first_step) // self.steps_per_epoch))
        t = self.layer_target
        densities = torch.stack([u.last_mask.mean() for u in self.cost.unit_macs])
        balance = (torch.relu(p * t - densities) ** 2 + torch.relu(densities - 1 + p - p * t) ** 2).mean()
        if step % 10 == 0:
            self.trace.append({"step": step, "flops_ratio": float(ratio.detach()), "target": target})
        return loss + self.lbda * (ratio.to(loss.dtype) - target) ** 2 + self.gamma * balance.to(loss.dtype)


class SaliencyLasso(Callback):
    """FBS's sparsity regulariser (Mayo, mayo/net/tf/gate/sparse.py): lam * sum |a * g| over the batch, the channels
    and the gated layers (a * g: the kept saliencies)."""

    def __init__(self, lam: float):
        self.lam = lam

    def on_loss(self, step, model, loss):
        kept = [u.last_gain.abs().sum() for _, u in gated_units(model) if u.last_gain is not None]
        return loss + self.lam * torch.stack(kept).sum() if kept else loss


def summary(per_input: np.ndarray) -> dict[str, float]:
    """Mean, median and 95th percentile of per-input FLOPs."""
    return {
        "flops_mean": float(per_input.mean()),
        "flops_p50": float(np.percentile(per_input, 50)),
        "flops_p95": float(np.percentile(per_input, 95)),
    }
