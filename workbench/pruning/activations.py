"""Forward hooks that run a model on a calibration batch and keep per-channel statistics of its activations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn as nn

Statistic = Callable[[torch.Tensor], torch.Tensor]
"""Maps a post-ReLU activation reshaped to [N, C, H, W] to a [C] tensor summed over the N images."""

HOOKED_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


@dataclass
class ChannelStatistics:
    """Mean per-channel statistics: after each conv/linear layer (through its BatchNorm) and into each layer."""

    outputs: dict[nn.Module, torch.Tensor] = field(default_factory=dict)
    inputs: dict[nn.Module, torch.Tensor] = field(default_factory=dict)


def check_calibration(calibration: object, method: str) -> torch.Tensor:
    """Return `calibration` if it is a non-empty batch tensor; otherwise raise a one-line ValueError."""
    if calibration is None:
        raise ValueError(f"{method} needs calibration data (a tensor of inputs, e.g. 64-256 images), got None")
    if not isinstance(calibration, torch.Tensor) or calibration.ndim < 2 or len(calibration) == 0:
        got = tuple(calibration.shape) if isinstance(calibration, torch.Tensor) else type(calibration).__name__
        raise ValueError(f"{method} needs calibration as a non-empty tensor [N, ...] of inputs, got {got}")
    return calibration


def as_maps(t: torch.Tensor) -> torch.Tensor:
    """View an activation [N, C, *spatial] as [N, C, H, W] maps: [N, C] -> 1x1, [N, C, L] -> 1xL, 3-D -> (D*H)xW."""
    n, c = t.shape[:2]
    return t.reshape(n, c, 1, 1) if t.ndim == 2 else t.reshape(n, c, -1, t.shape[-1])


def weight_shapes(model: nn.Module) -> tuple:
    """The shapes of all weights of `model`: a cheap signature that changes when the model is pruned."""
    return tuple(tuple(m.weight.shape) for m in model.modules() if isinstance(getattr(m, "weight", None), torch.Tensor))


def batches(calibration: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Split the calibration tensor into mini-batches of at most `batch_size` inputs."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    yield from calibration.split(batch_size)


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
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def activation_sources(model: nn.Module, example: torch.Tensor) -> dict[nn.Module, nn.Module]:
    """For each conv/linear layer, the module whose output is its activation: the BatchNorm it feeds, or itself.

    The pairing is found by running `example` and matching tensors by identity, so it holds for Sequential models
    and for functional forward code alike.
    """
    produced: dict[int, nn.Module] = {}
    sources: dict[nn.Module, nn.Module] = {}
    layers = [m for m in model.modules() if isinstance(m, HOOKED_TYPES)]
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def remember(module, args, output):
        produced[id(output)] = module
        sources.setdefault(module, module)
        keep.append(output)  # keep the tensor alive so that its id is not reused within the pass

    def pair(module, args, output):
        layer = produced.get(id(args[0]))
        if layer is not None:
            sources[layer] = module

    keep: list[torch.Tensor] = []
    registrations = [lambda m=m: m.register_forward_hook(remember) for m in layers]
    registrations += [lambda m=m: m.register_forward_hook(pair) for m in norms]
    with evaluating(model), hooks(registrations):
        model(example.to(device_of(model)))
    return sources


def channel_statistics(
    model: nn.Module,
    calibration: torch.Tensor,
    statistic: Statistic,
    batch_size: int = 64,
    outputs: set[nn.Module] | None = None,
    inputs: set[nn.Module] | None = None,
) -> ChannelStatistics:
    """Mean of `statistic` per channel over the calibration inputs, on ReLU(activation) after and before layers.

    After a conv/linear layer (those in `outputs`; default all), the activation is the output of the BatchNorm that
    follows it (if any) passed through ReLU; before a conv layer (those in `inputs`; default all), it is the layer's
    input, ReLU applied (a no-op on post-ReLU inputs). The model runs in eval mode without autograd, one mini-batch
    at a time; all hooks are removed before returning.
    """
    sources = activation_sources(model, calibration[:1])
    outputs = set(sources) if outputs is None else set(outputs) & set(sources)
    inputs = {m for m in sources if not isinstance(m, nn.Linear)} if inputs is None else set(inputs)
    sums: dict[tuple[str, nn.Module], torch.Tensor] = {}
    seen: dict[tuple[str, nn.Module], int] = {}
    cache: dict[int, torch.Tensor] = {}  # statistics of tensors that feed several layers, computed once per batch
    keep: list[torch.Tensor] = []  # ... and the tensors themselves, so that their ids stay unique within a batch

    def accumulate(key, activation):
        value = cache.get(id(activation))
        if value is None:
            value = cache[id(activation)] = statistic(as_maps(torch.relu(activation.float())))
            keep.append(activation)
        sums[key] = sums[key] + value if key in sums else value.clone()
        seen[key] = seen.get(key, 0) + len(activation)

    def on_output(layers):
        def hook(module, args, output):
            for layer in layers:
                if output.ndim == 2 or not isinstance(layer, nn.Linear):  # a token-wise linear has no channel axis 1
                    accumulate(("out", layer), output)

        return hook

    def on_input(module, args):
        if args and isinstance(args[0], torch.Tensor) and args[0].ndim >= 2:
            accumulate(("in", module), args[0])

    by_source: dict[nn.Module, list[nn.Module]] = {}
    for layer in outputs:
        by_source.setdefault(sources[layer], []).append(layer)
    registrations = [lambda s=s, ls=ls: s.register_forward_hook(on_output(ls)) for s, ls in by_source.items()]
    registrations += [lambda m=m: m.register_forward_pre_hook(on_input) for m in inputs]
    device = device_of(model)
    with evaluating(model), hooks(registrations):
        for batch in batches(calibration, batch_size):
            model(batch.to(device))
            cache.clear()
            keep.clear()
    means = {key: total / seen[key] for key, total in sums.items()}
    return ChannelStatistics(
        outputs={m: v for (side, m), v in means.items() if side == "out"},
        inputs={m: v for (side, m), v in means.items() if side == "in"},
    )
