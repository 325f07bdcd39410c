"""When do unstructured masks pay? Dense layers against sparse kernels on this CPU, and the crossover sparsity.

A masked layer runs dense in PyTorch (its zeros are multiplied). A sparse kernel skips them but pays for indices and
irregular memory access. For every conv/linear layer shape of some registry models, and for whole models, this times
the dense layer (F.linear / F.conv*, the masked weight) against

- `torch_csr`: the weight as a torch sparse CSR matrix, `torch.sparse.mm` (convolutions as im2col: F.unfold, then
  the sparse matrix times the columns);
- `scipy_csr`: the same with scipy.sparse's CSR matrix product (single-threaded),

at sparsities from 50% to 99% and batch sizes 1 and 64, in alternating rounds (medians). The crossover of a layer is
the lowest sparsity measured from which the sparse kernel is faster at that sparsity and every higher one (None:
never). The weights are random, pruned by magnitude: timing depends on the shape and the count of nonzeros only.
"""

from __future__ import annotations

import copy
import statistics
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench import checks

BACKENDS = ("torch_csr", "scipy_csr")
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """0/1 mask keeping the round((1 - sparsity) * n) largest |weights| (exact count)."""
    keep = round((1 - sparsity) * weight.numel())
    mask = torch.zeros(weight.numel())
    if keep:
        mask[weight.abs().flatten().topk(keep).indices] = 1.0
    return mask.reshape(weight.shape)


class SparseLayer(nn.Module):
    """A conv (1-D or 2-D, groups 1) or linear layer whose weight is a sparse matrix (out x in*k*k)."""

    def __init__(self, layer: nn.Module, backend: str):
        super().__init__()
        checks.choice("sparse backend", backend, BACKENDS)
        self.backend, self.layer_type = backend, type(layer)
        self.conv = isinstance(layer, (nn.Conv1d, nn.Conv2d))
        if self.conv:
            if layer.groups != 1 or layer.padding_mode != "zeros":
                raise ValueError(f"sparse kernels take plain convolutions (groups 1, zero padding), got {layer}")
            self.kernel, self.stride = layer.kernel_size, layer.stride
            self.padding, self.dilation = layer.padding, layer.dilation
        matrix = layer.weight.detach().reshape(layer.weight.shape[0], -1)
        self.out_features = matrix.shape[0]
        self.weight = to_csr(matrix) if backend == "torch_csr" else _scipy_csr(matrix)
        self.bias = None if layer.bias is None else layer.bias.detach().clone()

    def matmul(self, cols: torch.Tensor) -> torch.Tensor:
        """weight @ cols for a dense (in, n) matrix `cols`."""
        if self.backend == "torch_csr":
            return torch.sparse.mm(self.weight, cols)
        return torch.from_numpy(np.asarray(self.weight @ cols.numpy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.conv:
            y = self.matmul(x.reshape(-1, x.shape[-1]).T.contiguous()).T
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias
        one_d = x.dim() == 3
        if one_d:  # a 1-D convolution as a 2-D one of height 1
            x = x.unsqueeze(2)
        k, s, d = (_pair(v, one_d, 1) for v in (self.kernel, self.stride, self.dilation))
        p = _pair(self.padding, one_d, 0)
        cols = F.unfold(x, k, dilation=d, padding=p, stride=s)  # (B, in*k*k, L)
        b, _, length = cols.shape
        out = self.matmul(cols.permute(1, 0, 2).reshape(cols.shape[1], b * length))
        h = (x.shape[2] + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
        y = out.reshape(self.out_features, b, length).permute(1, 0, 2).reshape(b, self.out_features, h, -1)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        return y.squeeze(2) if one_d else y


def to_csr(matrix: torch.Tensor) -> torch.Tensor:
    """`matrix` as a torch sparse CSR tensor (without PyTorch's "CSR support is in beta" warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return matrix.detach().to_sparse_csr()


def _pair(value, one_d: bool, height: int) -> tuple[int, int]:
    """A 2-D setting: a 1-D convolution's value becomes (height, value), the height's being neutral (1 or 0)."""
    value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    return (height, value[0]) if one_d else (value * 2 if len(value) == 1 else value)


def _scipy_csr(matrix: torch.Tensor):
    from scipy import sparse

    return sparse.csr_matrix(matrix.numpy())


def sparsified(model: nn.Module, backend: str) -> nn.Module:
    """A copy of `model` (masks folded) with every plain conv and linear layer replaced by a SparseLayer."""
    from workbench.pruning.masks import make_permanent

    model = make_permanent(copy.deepcopy(model)).eval()
    for name, module in list(model.named_modules()):
        plain_conv = isinstance(module, (nn.Conv1d, nn.Conv2d)) and module.groups == 1
        if plain_conv or isinstance(module, nn.Linear):
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, SparseLayer(module, backend))
    return model


@dataclass(frozen=True)
class LayerCase:
    """One layer shape of a registry model: where it is and the per-sample input it gets."""

    model: str
    name: str
    layer: nn.Module
    input_shape: tuple[int, ...]

    @property
    def label(self) -> str:
        w = self.layer.weight.shape
        kernel = "x".join(str(k) for k in w[2:])
        what = f"{w[1]}->{w[0]}" + (f" k{kernel}" if kernel else "")
        return f"{self.model}.{self.name} {type(self.layer).__name__} {what} on {self.input_shape}"


def layer_cases(model_names) -> list[LayerCase]:
    """Every conv/linear layer of the named registry models with its input shape (first of each distinct shape)."""
    from workbench import models
    from workbench.metrics import prunable_layers

    cases, seen = [], set()
    for model_name in model_names:
        shape = tuple(models.MODELS.info(model_name)["input_shape"])
        model = models.build(model_name, 10, shape).eval()
        layers = prunable_layers(model)
        inputs = input_shapes(model, [m for _, m in layers], shape)
        for name, layer in layers:
            key = (type(layer), tuple(layer.weight.shape), inputs[layer], getattr(layer, "stride", None))
            if key not in seen and not (isinstance(layer, nn.Conv2d) and layer.groups != 1):
                seen.add(key)
                cases.append(LayerCase(model_name, name, layer, inputs[layer]))
    return cases


def input_shapes(model: nn.Module, layers: list[nn.Module], shape: tuple[int, ...]) -> dict[nn.Module, tuple]:
    """{layer: the per-sample shape of its input} from one forward pass of `model` on zeros."""
    seen: dict[nn.Module, tuple] = {}

    def record(module, args, output) -> None:  # a hook returning a value would replace the output
        seen.setdefault(module, tuple(args[0].shape[1:]))

    hooks = [m.register_forward_hook(record) for m in layers]
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    return seen


def time_pair(dense: nn.Module, sparse: nn.Module, x: torch.Tensor, threads: int, rounds: int,
              min_run_time: float) -> tuple[float, float]:  # fmt: skip
    """Median ms of dense and sparse on `x`, alternating rounds."""
    from workbench.deploy.timing import median_ms

    dense_ms, sparse_ms = [], []
    with torch.no_grad():
        for _ in range(rounds):
            dense_ms.append(median_ms(dense, x, threads, min_run_time))
            sparse_ms.append(median_ms(sparse, x, threads, min_run_time))
    return statistics.median(dense_ms), statistics.median(sparse_ms)


def masked_copy(module: nn.Module, sparsity: float) -> nn.Module:
    """A copy of `module` whose conv/linear weights keep their largest (1 - sparsity) share, zeros stored dense."""
    from workbench.metrics import prunable_layers

    out = copy.deepcopy(module).eval()
    layers = prunable_layers(out) or [("", out)]
    with torch.no_grad():
        for _, layer in layers:
            layer.weight.mul_(magnitude_mask(layer.weight, sparsity))
    return out


def benchmark_rows(cases, model_names, sparsities=SPARSITIES, batch_sizes=(1, 64), backends=BACKENDS, threads: int = 1,
                   rounds: int = 3, min_run_time: float = 0.05, seed: int = 0) -> list[dict]:  # fmt: skip
    """One row per (layer or model, sparsity, batch size, backend): dense and sparse ms, speedup, nonzeros."""
    from workbench import models

    for value in sparsities:
        checks.number("sparsity", value, 0.0, 1.0, open_high=True)
    for backend in backends:
        checks.choice("sparse backend", backend, BACKENDS)
    torch.manual_seed(seed)
    items = [(c.label, "layer", c.layer, c.input_shape) for c in cases]
    for name in model_names:
        shape = tuple(models.MODELS.info(name)["input_shape"])
        items.append((f"{name} (whole model)", "model", models.build(name, 10, shape).eval(), shape))
    rows = []
    for label, kind, module, shape in items:
        for sparsity in sparsities:
            dense = masked_copy(module, sparsity)
            for batch in batch_sizes:
                x = torch.randn(batch, *shape)
                for backend in backends:
                    sparse = SparseLayer(dense, backend) if kind == "layer" else sparsified(dense, backend)
                    d, s = time_pair(dense, sparse, x, threads, rounds, min_run_time)
                    rows.append({"item": label, "kind": kind, "sparsity": sparsity, "batch_size": batch,
                                 "backend": backend, "dense_ms": d, "sparse_ms": s, "speedup": d / s,
                                 "threads": threads, "rounds": rounds})  # fmt: skip
    return rows


def crossovers(rows: list[dict]) -> list[dict]:
    """Per (item, batch size, backend): the lowest sparsity from which sparse is faster at every higher one measured."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["item"], row["kind"], row["batch_size"], row["backend"]), []).append(row)
    out = []
    for (item, kind, batch, backend), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["sparsity"])
        crossover = None
        for i, r in enumerate(rs):
            if all(later["speedup"] > 1 for later in rs[i:]):
                crossover = r["sparsity"]
                break
        best = max(rs, key=lambda r: r["speedup"])
        out.append({"item": item, "kind": kind, "batch_size": batch, "backend": backend, "crossover": crossover,
                    "best_speedup": best["speedup"], "at_sparsity": best["sparsity"]})  # fmt: skip
    return out


def crossover_sentences(crossover) -> list[str]:
    """One sentence per batch size and backend from a crossovers() table (a DataFrame): where sparse pays, if ever."""
    lines = []
    for (batch, backend), rows in crossover.groupby(["batch_size", "backend"], sort=False):
        paying = rows[rows["crossover"].notna()]
        never = len(rows) - len(paying)
        text = f"batch {batch}, {backend}: "
        if len(paying):
            text += (f"sparse beats dense from sparsity {paying['crossover'].min():g} to {paying['crossover'].max():g} "
                     f"in {len(paying)} of {len(rows)} layers or models")  # fmt: skip
        else:
            text += f"sparse never beats dense in the {len(rows)} layers and models timed"
        if len(paying) and never:
            text += f"; never in the other {never}"
        best = rows.loc[rows["best_speedup"].idxmax()]
        lines.append(f"{text} (best {best['best_speedup']:.2f}x, {best['item']} at {best['at_sparsity']:g}).")
    return lines
