"""NetAdapt's latency lookup table: per-layer latency measured on this CPU over a grid of channel widths.

Every conv/linear layer that channel pruning can narrow is timed alone (its input size as in the model, bias on as
after batch-norm folding, channels-last like the timed models) at `points` widths per side between the narrowest a
candidate can have and the dense width. A model's predicted latency is the sum of its layers' bilinear
interpolations plus the rest (activations, pooling, additions, untouched layers, call overhead), modelled as
c0 + c1 x (output elements of the tabled layers) and calibrated on two whole models measured when the table is built:
the dense one and the narrowest candidate, so both ends are predicted exactly. NetAdapt (Yang et al., 2018) builds
one table per layer and platform and sums its entries; the interpolation between measured widths and the calibrated
rest are ours. The table is cached as JSON under the run cache, keyed by the layers' shapes, the widths' bounds, batch
size, threads, torch version and CPU; `workbench bench latency-table` prints how far its predictions are from
measured whole models.
"""

from __future__ import annotations

import bisect
import json
import platform
from dataclasses import asdict, dataclass

import filelock
import torch
import torch.nn as nn

from workbench import paths, speed, stopwatch
from workbench.config import stable_hash
from workbench.records import write_atomic
from workbench.torchutil import evaluating, hooks


@dataclass
class LayerTable:
    """Measured milliseconds of one layer at every (input width, output width) of the grid."""

    ins: list[int]
    outs: list[int]
    ms: list[list[float]]

    def at(self, inputs: int, out: int) -> float:
        """Bilinear interpolation of the grid at (inputs, out), clamped to the grid's range."""
        i0, i1, wi = _bracket(self.ins, inputs)
        o0, o1, wo = _bracket(self.outs, out)
        top = self.ms[i0][o0] * (1 - wo) + self.ms[i0][o1] * wo
        bottom = self.ms[i1][o0] * (1 - wo) + self.ms[i1][o1] * wo
        return top * (1 - wi) + bottom * wi


def _bracket(grid: list[int], value: float) -> tuple[int, int, float]:
    if value <= grid[0]:
        return 0, 0, 0.0
    if value >= grid[-1]:
        return len(grid) - 1, len(grid) - 1, 0.0
    j = bisect.bisect_right(grid, value)
    return j - 1, j, (value - grid[j - 1]) / (grid[j] - grid[j - 1])


@dataclass
class LatencyTable:
    """Per-layer tables plus the calibrated rest; `predict(widths)` is a model's latency in ms."""

    batch_size: int
    threads: int
    layers: dict[str, LayerTable]
    elements: dict[str, int]  # output elements per output channel of each tabled layer (one example)
    rest: tuple[float, float]  # c0 (ms), c1 (ms per output element of the tabled layers)
    dense_ms: float
    narrow_ms: float
    settings: dict

    def layer_ms(self, widths: dict[str, tuple[int, int]]) -> float:
        return sum(self.layers[name].at(*widths[name]) for name in self.layers)

    def output_elements(self, widths: dict[str, tuple[int, int]]) -> int:
        return sum(widths[name][1] * self.elements[name] for name in self.layers)

    def predict(self, widths: dict[str, tuple[int, int]]) -> float:
        """Predicted latency (ms) of the model whose tabled layers have these (input, output) widths."""
        c0, c1 = self.rest
        return self.layer_ms(widths) + c0 + c1 * self.output_elements(widths)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> LatencyTable:
        data = json.loads(text)
        data["layers"] = {name: LayerTable(**layer) for name, layer in data["layers"].items()}
        data["rest"] = tuple(data["rest"])
        return cls(**data)


def grid(low: int, high: int, points: int) -> list[int]:
    """`points` widths from `low` to `high` (both included, distinct, ascending)."""
    if high <= low or points <= 1:
        return [high]
    return sorted({round(low + (high - low) * i / (points - 1)) for i in range(points)})


def _shapes_seen(model: nn.Module, input_shape, names) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """The (input, output) shapes (without batch) of each named layer in one forward pass."""
    modules, seen = dict(model.named_modules()), {}

    def keep(name: str):
        def hook(module, args, output) -> None:
            seen.setdefault(name, (tuple(args[0].shape[1:]), tuple(output.shape[1:])))

        return hook

    with hooks([lambda n=n: modules[n].register_forward_hook(keep(n)) for n in names]), evaluating(model):
        model(torch.zeros(1, *input_shape))
    return seen


def _narrowed(layer: nn.Module, inputs: int, out: int) -> nn.Module:
    """A fresh layer like `layer` with `inputs` input and `out` output channels (bias on, as after BN folding)."""
    if isinstance(layer, nn.Linear):
        return nn.Linear(inputs, out)
    depthwise = layer.groups > 1 and layer.groups == layer.in_channels == layer.out_channels
    groups = out if depthwise else layer.groups
    inputs = out if depthwise else inputs
    conv = next(t for t in (nn.Conv1d, nn.Conv2d, nn.Conv3d) if isinstance(layer, t))  # subclasses: their base
    return conv(inputs, out, layer.kernel_size, layer.stride, layer.padding, layer.dilation, groups, True)


@torch.inference_mode()
def _time_layer(layer: nn.Module, shape: tuple[int, ...], inputs: int, out: int, batch_size: int, threads: int,
                min_run_time: float) -> float:  # fmt: skip
    narrowed = _narrowed(layer, inputs, out).eval()
    x = torch.randn(batch_size, inputs, *shape[1:])
    if x.dim() == 4:
        narrowed, x = narrowed.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return block_median_ms(narrowed, x, threads, min_run_time)


def block_median_ms(fn, x, threads: int, block_seconds: float, blocks: int = 7) -> float:
    """Median over `blocks` timed blocks of about `block_seconds` each of the milliseconds per call of `fn(x)`."""
    return stopwatch.median_ms(fn, x, threads=threads, min_run_time=block_seconds * blocks, blocks=blocks)


def build(model: nn.Module, input_shape, bounds: dict[str, tuple[tuple[int, int], tuple[int, int]]],
          narrow: nn.Module, batch_size: int = 1, threads: int = 1, points: int = 5,
          min_run_time: float = 0.003) -> LatencyTable:  # fmt: skip
    """Measure the table of `model` now. `bounds[name] = ((narrowest input, dense input), (narrowest out, dense
    out))` for every layer pruning can narrow, and `narrow` is the narrowest candidate (SearchSpace gives both)."""
    modules, shapes = dict(model.named_modules()), _shapes_seen(model, input_shape, list(bounds))
    layers, elements = {}, {}
    for name, ((lo_in, hi_in), (lo_out, hi_out)) in bounds.items():
        ins, outs = grid(lo_in, hi_in, points), grid(lo_out, hi_out, points)
        ms = [[_time_layer(modules[name], shapes[name][0], i, o, batch_size, threads, min_run_time) for o in outs]
              for i in ins]  # fmt: skip
        layers[name] = LayerTable(ins, outs, ms)
        out_shape = shapes[name][1]
        elements[name] = int(torch.tensor(out_shape[1:]).prod()) if len(out_shape) > 1 else 1
    dense_ms = whole_model_ms(model, input_shape, batch_size, threads, min_run_time)
    narrow_ms = whole_model_ms(narrow, input_shape, batch_size, threads, min_run_time)
    table = LatencyTable(batch_size, threads, layers, elements, (0.0, 0.0), dense_ms, narrow_ms,
                         {"points": points, "min_run_time": min_run_time, **machine()})  # fmt: skip
    dense_w = {n: (b[0][1], b[1][1]) for n, b in bounds.items()}
    narrow_w = {n: (b[0][0], b[1][0]) for n, b in bounds.items()}
    rest_d, rest_n = dense_ms - table.layer_ms(dense_w), narrow_ms - table.layer_ms(narrow_w)
    span = table.output_elements(dense_w) - table.output_elements(narrow_w)
    c1 = max(0.0, (rest_d - rest_n) / span) if span > 0 else 0.0  # noise can make it negative: flat then
    c0 = rest_d - c1 * table.output_elements(dense_w)  # the dense end stays exact (fractions are of it)
    table.rest = (c0, c1)
    return table


def whole_model_ms(model: nn.Module, input_shape, batch_size: int, threads: int, min_run_time: float) -> float:
    """Milliseconds per forward pass of `model` made inference-ready (BN folded, channels-last), as runs are timed."""
    ready = speed.inference_ready(model)
    x = torch.randn(batch_size, *input_shape)
    x = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
    with torch.inference_mode():
        return block_median_ms(ready, x, threads, 10 * min_run_time, blocks=15)


def machine() -> dict:
    return {"torch": torch.__version__, "cpu": platform.processor() or platform.machine()}


def key(model: nn.Module, input_shape, bounds: dict, batch_size: int, threads: int, points: int) -> str:
    """What decides a table: the layers' shapes, the widths' bounds, the setting and this machine."""
    shapes = [(n, type(m).__name__, tuple(m.weight.shape)) for n, m in model.named_modules()
              if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]  # fmt: skip
    setting = {"batch": batch_size, "threads": threads, "points": points, "version": 2, **machine()}
    return stable_hash({"shapes": shapes, "input": list(input_shape), "bounds": sorted(bounds.items()), **setting})


def cached(model: nn.Module, input_shape, bounds: dict, narrow, batch_size: int = 1, threads: int = 1,
           points: int = 5) -> LatencyTable:  # fmt: skip
    """The table from the cache, measured and saved (atomically) the first time; `narrow()` builds the narrowest
    candidate (called only when measuring)."""
    path = paths.cache_dir() / "latency-tables" / f"{key(model, input_shape, bounds, batch_size, threads, points)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(path.with_suffix(".lock")):  # parallel runs measure one table once, not at the same time
        return _cached(path, model, input_shape, bounds, narrow, batch_size, threads, points)


def _cached(path, model, input_shape, bounds, narrow, batch_size, threads, points) -> LatencyTable:
    if path.exists():
        try:
            return LatencyTable.from_json(path.read_text())
        except (ValueError, KeyError, TypeError):
            path.unlink()  # a damaged table is measured again
    table = build(model, input_shape, bounds, narrow(), batch_size, threads, points)
    write_atomic(path, table.to_json())
    return table
