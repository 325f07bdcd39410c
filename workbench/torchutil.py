"""General torch helpers: evaluation mode, hook registration, device, mini-batches, a pruning signature."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

from workbench import checks


def weight_shapes(model: nn.Module) -> tuple:
    """The shapes of all weights of `model`: a cheap signature that changes when the model is pruned."""
    return tuple(tuple(m.weight.shape) for m in model.modules() if isinstance(getattr(m, "weight", None), torch.Tensor))


def batches(data: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Split `data` along its first axis into mini-batches of at most `batch_size` (a positive integer)."""
    checks.integer("batch_size", batch_size, 1)
    yield from data.split(batch_size)


@contextmanager
def evaluating(model: nn.Module, grad: bool = False):
    """Run the body with `model` in eval mode (and without autograd unless `grad`); restore its training flag."""
    was_training = model.training
    model.eval()
    try:
        with torch.set_grad_enabled(grad):
            yield model
    finally:
        model.train(was_training)


@contextmanager
def hooks(registrations: list[Callable[[], torch.utils.hooks.RemovableHandle]]):
    """Register hooks by calling each function in `registrations`; remove them all on exit, even after an error."""
    handles = []
    try:
        for register in registrations:
            handles.append(register())
        yield handles
    finally:
        for handle in handles:
            handle.remove()


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
