"""Where activations are measured (sites found by tensor identity) and per-channel statistics of them.

A site is ("in", module), the tensor a module receives, or ("out", module), the tensor it returns. One forward pass
on an example (`trace`) records every module's input and output in execution order, so sites that see the same
tensor (a residual stream read by several blocks, a map that reaches the classifier through functional pooling) are
recognised as one and measured once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from workbench.torchutil import batches, device_of, evaluating, hooks

Statistic = Callable[[torch.Tensor], torch.Tensor]
"""Maps a post-ReLU activation reshaped to [N, C, H, W] to a [C] tensor summed over the N images."""

Site = tuple[str, nn.Module]
"""("in", module): the first tensor argument the module receives; ("out", module): the tensor it returns."""

LAYER_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


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


@dataclass
class Trace:
    """Every module's input and output on one example, in execution order (tensors kept, so ids stay unique)."""

    events: list[tuple[Site, torch.Tensor]]

    def __post_init__(self):
        self.tensor = {site: t for site, t in self.events}
        self.first: dict[int, Site] = {}
        for site, t in self.events:
            self.first.setdefault(id(t), site)

    def canonical(self, site: Site) -> Site | None:
        """The first site at which `site`'s tensor appears (None if the site never ran)."""
        t = self.tensor.get(site)
        return None if t is None else self.first[id(t)]

    def pooled_map(self, layer: nn.Module) -> Site | None:
        """The map [N, C, *spatial] that reaches `layer`'s input [N, C] through global average or max pooling.

        Found by value among the tensors produced before `layer` ran (ReLU applied or not), so functional pooling
        (F.adaptive_avg_pool2d in a forward method) is recognised as well as pooling modules; None if there is none.
        """
        x = self.tensor.get(("in", layer))
        if x is None or x.ndim != 2:
            return None
        position = next(i for i, (site, _) in enumerate(self.events) if site == ("in", layer))
        for _, t in reversed(self.events[:position]):
            if t.ndim >= 3 and t.shape[:2] == x.shape and t[0, 0].numel() > 1 and _pools_to(t, x):
                return self.first[id(t)]
        return None


def _pools_to(t: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether global average or max pooling of `t` (or of ReLU(t)) gives `x`."""
    for maps in (t, torch.relu(t)):
        flat = maps.flatten(2)
        if torch.allclose(flat.mean(2), x, atol=1e-6) or torch.allclose(flat.amax(2), x, atol=1e-6):
            return True
    return False


def trace(model: nn.Module, example: torch.Tensor) -> Trace:
    """Run `example` through `model` (eval mode, no autograd) recording every module's input and output tensor."""
    events: list[tuple[Site, torch.Tensor]] = []

    def on_input(module, args):
        if args and isinstance(args[0], torch.Tensor):
            events.append((("in", module), args[0]))

    def on_output(module, args, output):
        if isinstance(output, torch.Tensor):
            events.append((("out", module), output))

    registrations = [lambda m=m: m.register_forward_pre_hook(on_input) for m in model.modules()]
    registrations += [lambda m=m: m.register_forward_hook(on_output) for m in model.modules()]
    with evaluating(model), hooks(registrations):
        model(example.to(device_of(model)))
    return Trace(events)


def activation_sources(model: nn.Module, traced: Trace) -> dict[nn.Module, nn.Module]:
    """For each conv/linear layer, the module whose output is its activation: the BatchNorm it feeds, or itself."""
    norm_of_input = {
        id(traced.tensor[("in", m)]): m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and ("in", m) in traced.tensor
    }
    return {
        layer: norm_of_input.get(id(traced.tensor[("out", layer)]), layer)
        for layer in model.modules()
        if isinstance(layer, LAYER_TYPES) and ("out", layer) in traced.tensor
    }


def site_statistics(
    model: nn.Module, calibration: torch.Tensor, statistic: Statistic, sites: set[Site], batch_size: int = 64
) -> dict[Site, torch.Tensor]:
    """Mean of `statistic` per channel of ReLU(activation) at each site, over the calibration inputs.

    The model runs in eval mode without autograd, one mini-batch at a time; all hooks are removed before returning.
    """
    sums: dict[Site, torch.Tensor] = {}
    seen: dict[Site, int] = {}

    def accumulate(site: Site, activation: torch.Tensor) -> None:
        value = statistic(as_maps(torch.relu(activation.float())))
        sums[site] = sums[site] + value if site in sums else value.clone()
        seen[site] = seen.get(site, 0) + len(activation)

    def register(site: Site):
        side, module = site
        if side == "in":
            return module.register_forward_pre_hook(lambda m, args: accumulate(site, args[0]))
        return module.register_forward_hook(lambda m, args, output: accumulate(site, output))

    device = device_of(model)
    with evaluating(model), hooks([lambda s=s: register(s) for s in sites]):
        for batch in batches(calibration, batch_size):
            model(batch.to(device))
    return {site: total / seen[site] for site, total in sums.items()}
