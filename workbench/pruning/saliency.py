"""Per-weight saliencies from gradients and curvature: SNIP, GraSP, SynFlow, Taylor, OBD's Hessian diagonal.

Every function scores the conv/linear weights of `model` as the forward pass sees them (masks applied) and returns
{layer name: score tensor shaped like the weight}; higher = keep. Scores are computed on a mask-free copy in eval
mode (batch norm uses its running statistics), so the model itself is left as it was. `loss_fn(outputs, labels)`
defaults to cross-entropy; tests pass a quadratic loss whose Hessian is known.

Checked against the reference implementations of SNIP, GraSP and SynFlow in ganguli-lab/Synaptic-Flow
(Pruners/pruners.py at commit 9dfa57a) on identical weights: see tests/test_sensitivity.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, hessian, vmap

from workbench import checks
from workbench.metrics import prunable_layers
from workbench.pruning.masks import make_permanent, refresh_masked_weights

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Scores = dict[str, torch.Tensor]
HESSIAN_MODES = ("fisher", "hutchinson", "exact")


def plain_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with masks folded into the weights and every parameter a leaf needing grad."""
    clone = make_permanent(copy.deepcopy(refresh_masked_weights(model))).eval()
    for p in clone.parameters():
        p.requires_grad_(True)
    return clone


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """{layer name: weight parameter} of the conv/linear layers."""
    return {name: m.weight for name, m in prunable_layers(model)}


def batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Loss | None, batch_size: int):
    """Mean loss over the calibration set, built from mini-batches of at most `batch_size` (one graph)."""
    loss_fn = loss_fn or F.cross_entropy
    total = 0
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        total = total + loss_fn(model(xb), yb) * len(xb)
    return total / len(x)


def gradients(model: nn.Module, x, y, loss_fn: Loss | None = None, batch_size: int = 64) -> Scores:
    """{layer: dL/dw} of the mean calibration loss, at the effective (masked) weights."""
    clone = plain_copy(model)
    params = weights(clone)
    grads = torch.autograd.grad(batch_loss(clone, x, y, loss_fn, batch_size), list(params.values()))
    return {name: g.detach() for name, g in zip(params, grads, strict=True)}


def snip(model: nn.Module, x, y, loss_fn: Loss | None = None, batch_size: int = 64) -> Scores:
    """SNIP (Lee et al., 2019): connection sensitivity |g * w|, normalised to sum to 1 over all layers."""
    effective = {name: m.weight.detach() for name, m in prunable_layers(model)}
    scores = {n: (g * effective[n]).abs() for n, g in gradients(model, x, y, loss_fn, batch_size).items()}
    return _normalised(scores, torch.stack([s.sum() for s in scores.values()]).sum())


def taylor(model: nn.Module, x, y, loss_fn: Loss | None = None, batch_size: int = 64) -> Scores:
    """Taylor first order (Molchanov et al., 2019): (g * w)^2 per weight, averaged over calibration mini-batches."""
    effective = {name: m.weight.detach() for name, m in prunable_layers(model)}
    total: Scores = {}
    parts = list(zip(x.split(batch_size), y.split(batch_size), strict=True))
    for xb, yb in parts:
        for n, g in gradients(model, xb, yb, loss_fn, batch_size).items():
            total[n] = total.get(n, 0) + (g * effective[n]) ** 2 / len(parts)
    return total


def grasp(model: nn.Module, x, y, loss_fn: Loss | None = None, batch_size: int = 64, temperature: float = 200.0):
    """GraSP (Wang et al., 2020): score w * (H g) on outputs divided by `temperature`; removing the lowest scores
    preserves gradient flow best. Normalised by |sum of scores| as the reference code does."""
    checks.number("temperature", temperature, 0.0)
    clone = plain_copy(model)
    params = list(weights(clone).values())
    names = list(weights(clone))
    loss_fn = loss_fn or F.cross_entropy

    def tempered(outputs, labels):
        return loss_fn(outputs / temperature, labels)

    first = torch.autograd.grad(batch_loss(clone, x, y, tempered, batch_size), params)
    stopped = [g.detach() for g in first]
    again = torch.autograd.grad(batch_loss(clone, x, y, tempered, batch_size), params, create_graph=True)
    dot = sum((a * b).sum() for a, b in zip(stopped, again, strict=True))
    hg = torch.autograd.grad(dot, params)
    scores = {n: (h * p).detach() for n, h, p in zip(names, hg, params, strict=True)}
    return _normalised(scores, torch.stack([s.sum() for s in scores.values()]).sum().abs() + 1e-10)


def synflow(model: nn.Module, input_shape) -> Scores:
    """SynFlow (Tanaka et al., 2020): |w * dR/dw| with R = 1^T (prod_l |W_l|) 1, the output sum of the network
    with every parameter and buffer made positive, on an all-ones input (data-free)."""
    return synflow_scorer(model, input_shape)()


def synflow_scorer(model: nn.Module, input_shape) -> Callable[[], Scores]:
    """`synflow` of `model` as its masks are at each call: one positive copy is made here and its parameters are
    refreshed from the model at every call (the iterative pruning's rounds), instead of a deep copy per round."""
    clone = plain_copy(model)
    with torch.no_grad():
        for tensor in clone.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    params = weights(clone)
    sources = dict(model.named_modules())

    def scores() -> Scores:
        refresh_masked_weights(model)
        with torch.no_grad():  # the model's masked parameters as they are now, made positive
            for name, module in clone.named_modules():
                for p_name, p in module.named_parameters(recurse=False):
                    p.copy_(getattr(sources[name], p_name).abs())
        output = clone(torch.ones(1, *input_shape))
        grads = torch.autograd.grad(output.sum(), list(params.values()))
        return {n: (g * p).detach().abs() for (n, p), g in zip(params.items(), grads, strict=True)}

    return scores


def hessian_diagonal(
    model: nn.Module,
    x,
    y,
    mode: str = "fisher",
    loss_fn: Loss | None = None,
    samples: int = 16,
    seed: int = 0,
    max_exact: int = 4096,
) -> Scores:
    """The diagonal of the loss Hessian for every conv/linear weight.

    Modes: "exact" (second-order autograd per layer: the layer's Hessian block, whose diagonal is the full
    Hessian's; only for layers of at most `max_exact` weights), "hutchinson" (E[z * Hz] over `samples` Rademacher
    vectors z, unbiased but noisy), "fisher" (the empirical Fisher diagonal, mean over examples of the squared
    per-example gradient: the Gauss-Newton approximation OBD itself makes, for cross-entropy).
    """
    checks.choice("hessian mode", mode, HESSIAN_MODES)
    checks.integer("hessian samples", samples, 1)
    loss_fn = loss_fn or F.cross_entropy
    clone = plain_copy(model)
    params = dict(clone.named_parameters())
    layer_keys = {name: f"{name}.weight" if name else "weight" for name in weights(clone)}

    def loss_of(values: dict[str, torch.Tensor], xb, yb):
        return loss_fn(functional_call(clone, {**params, **values}, (xb,)), yb)

    if mode == "fisher":

        def one(values, xi, yi):
            return loss_of(values, xi[None], yi[None])

        wanted = {key: params[key] for key in layer_keys.values()}
        per_example = vmap(grad(one), in_dims=(None, 0, 0))(wanted, x, y)
        return {name: per_example[key].pow(2).mean(0).detach() for name, key in layer_keys.items()}
    if mode == "hutchinson":
        generator = torch.Generator().manual_seed(seed)
        keys = list(layer_keys.values())
        first = torch.autograd.grad(loss_of({}, x, y), [params[k] for k in keys], create_graph=True)
        total = {k: torch.zeros_like(params[k]) for k in keys}
        for _ in range(samples):
            z = [torch.randint(0, 2, params[k].shape, generator=generator).float() * 2 - 1 for k in keys]
            hz = torch.autograd.grad(first, [params[k] for k in keys], grad_outputs=z, retain_graph=True)
            for k, zi, hzi in zip(keys, z, hz, strict=True):
                total[k] += zi * hzi / samples
        return {name: total[key].detach() for name, key in layer_keys.items()}
    out = {}
    for name, key in layer_keys.items():
        size = params[key].numel()
        if size > max_exact:
            raise checks.ConfigError(
                f"exact Hessian of layer {name!r} ({size} weights) exceeds max_exact={max_exact}; "
                "use hessian='fisher' or 'hutchinson'"
            )
        block = hessian(lambda w, k=key: loss_of({k: w}, x, y))(params[key].detach())
        out[name] = block.reshape(size, size).diagonal().reshape(params[key].shape).detach()
    return out


def obd(model: nn.Module, x, y, mode: str = "fisher", **options) -> Scores:
    """OBD (LeCun, Denker & Solla, 1990): saliency 1/2 * h_ii * w_i^2 with the chosen Hessian diagonal."""
    effective = {name: m.weight.detach() for name, m in prunable_layers(model)}
    diagonal = hessian_diagonal(model, x, y, mode, **options)
    return {n: 0.5 * h * effective[n] ** 2 for n, h in diagonal.items()}


def _normalised(scores: Scores, norm: torch.Tensor) -> Scores:
    return {n: s / norm for n, s in scores.items()}
