"""Linear interpolation between two networks and its error barrier (Frankle et al., ICML 2020, instability analysis).

Two copies of one (sparse) network trained from the same point with different data orders are *stable* when the
error does not rise along the straight line between their weights: the barrier max_a E((1 - a) w1 + a w2) minus the
mean of the endpoints' errors is about zero. Networks with batch norm get their running statistics recomputed on
training batches at every inner point of the line (the averaged statistics of two networks are not those of their
average); the endpoints are the two networks as trained.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from workbench import checks, data, metrics
from workbench.pruning.masks import refresh_masked_weights

DEFAULT_ALPHAS = tuple(i / 10 for i in range(11))


def interpolated(a: nn.Module, b: nn.Module, alpha: float) -> nn.Module:
    """A copy of `a` with every floating-point tensor of its state (1 - alpha) * a + alpha * b; masks and integer
    buffers are taken from `a` (both networks must have the same architecture and, if masked, the same masks)."""
    checks.number("alpha", alpha, 0.0, 1.0)
    state_a, state_b = a.state_dict(), b.state_dict()
    if state_a.keys() != state_b.keys():
        raise ValueError("the two networks have different state keys; interpolate copies of one architecture only")
    mixed = {}
    for key, ta in state_a.items():
        tb = state_b[key]
        if ta.shape != tb.shape:
            raise ValueError(f"state {key!r} has shapes {tuple(ta.shape)} and {tuple(tb.shape)} in the two networks")
        same_mask = key.endswith("_mask") and torch.equal(ta, tb)
        if key.endswith("_mask") and not same_mask:
            raise ValueError(f"the networks have different masks ({key!r}); instability compares copies of one mask")
        mixed[key] = torch.lerp(ta, tb, alpha) if ta.is_floating_point() and not same_mask else ta.clone()
    out = copy.deepcopy(a)
    out.load_state_dict(mixed)
    return refresh_masked_weights(out)


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, dataset: Dataset, batches: int = 20, batch_size: int = 128) -> nn.Module:
    """Reset every batch-norm layer's running statistics and re-estimate them (cumulative average) on training data."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the batches below
    was_training = model.training
    model.train()
    for i, (x, _) in enumerate(data.loader(dataset, batch_size, shuffle=True, seed=0)):
        if i == batches:
            break
        model(x)
    model.train(was_training)
    return model


def interpolation_errors(
    a: nn.Module, b: nn.Module, test: Dataset, train: Dataset | None = None, alphas=DEFAULT_ALPHAS
) -> list[float]:
    """Test error (1 - top-1) at each alpha of the line from `a` (alpha 0) to `b` (alpha 1).

    `train` (needed for networks with batch norm) supplies the batches that re-estimate batch-norm statistics.
    """
    if has_batch_norm(a) and train is None:
        raise ValueError("a network with batch norm needs `train` to recompute its statistics along the line")
    loader = data.loader(test, 500, shuffle=False)
    errors = []
    for alpha in alphas:
        point = interpolated(a, b, float(alpha))
        if has_batch_norm(point) and 0 < alpha < 1:  # the endpoints are the two networks as trained
            recompute_batch_norm(point, train)
        errors.append(1.0 - metrics.top1(point, loader))
    return errors


def error_barrier(errors: list[float]) -> float:
    """Frankle et al.'s instability: the highest error along the line minus the mean of the two endpoints' errors."""
    if len(errors) < 2:
        raise ValueError(f"need the errors of at least the two endpoints, got {len(errors)}")
    return max(errors) - (errors[0] + errors[-1]) / 2
