"""Measurement: parameters (total, nonzero), FLOPs/MACs, per-layer sparsity, latency, top-1."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear)


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs whose `weight` the unstructured methods prune: conv and linear layers."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]


def prunable_weight_count(model: nn.Module) -> int:
    """How many weights the conv/linear layers hold (their shapes, zeros included)."""
    return sum(m.weight.numel() for _, m in prunable_layers(model))


def effective_tensors(model: nn.Module):
    """Yield (name, tensor) for every parameter as the forward pass sees it (masks applied)."""
    for module_name, module in model.named_modules():
        for pname, param in module.named_parameters(recurse=False):
            name = pname[: -len("_orig")] if pname.endswith("_orig") else pname
            tensor = getattr(module, name) if pname.endswith("_orig") else param
            yield (f"{module_name}.{name}" if module_name else name), tensor


def count_params(model: nn.Module) -> dict[str, int]:
    """Total and nonzero parameter counts, masks applied."""
    total = nonzero = 0
    for _, t in effective_tensors(model):
        total += t.numel()
        nonzero += int(torch.count_nonzero(t))
    return {"params": total, "nonzero_params": nonzero}


def flop_count(model: nn.Module, input_shape: tuple[int, ...], batch_size: int = 1) -> dict[str, object]:
    """Dense FLOPs of one forward pass (torch.utils.flop_counter counts 2 FLOPs per multiply-add).

    Returns flops, macs (= flops / 2) and per-module FLOPs keyed by module name.
    """
    was_training = model.training
    model.eval()
    x = torch.zeros(batch_size, *input_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    per_module = {}
    for name, counts in counter.get_flop_counts().items():
        if "." in name:  # "<RootClass>.<module path>"; "Global" and the bare root are the total
            per_module[name.split(".", 1)[1]] = int(sum(counts.values()))
    total = int(counter.get_total_flops())
    return {"flops": total, "macs": total // 2, "per_module": per_module}


def layer_table(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict[str, object]]:
    """One row per conv/linear layer: params, nonzero, sparsity, dense FLOPs and FLOPs left by the mask."""
    per_module = flop_count(model, input_shape)["per_module"]
    rows = []
    for name, module in prunable_layers(model):
        weight = module.weight
        params, nonzero = weight.numel(), int(torch.count_nonzero(weight))
        flops = per_module.get(name, 0)
        rows.append({
            "layer": name, "type": type(module).__name__, "shape": list(weight.shape), "params": params,
            "nonzero": nonzero, "sparsity": 1 - nonzero / params, "flops": flops,
            "sparse_flops": round(flops * nonzero / params),
        })  # fmt: skip
    return rows


def sparsity(model: nn.Module) -> float:
    """Fraction of zeros over the prunable (conv and linear) weights."""
    total = zeros = 0
    for _, module in prunable_layers(model):
        total += module.weight.numel()
        zeros += int((module.weight == 0).sum())
    return zeros / total if total else 0.0


@torch.no_grad()
def top1(model: nn.Module, loader) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    was_training = model.training
    model.eval()
    correct = seen = 0
    for x, y in loader:
        correct += int((model(x).argmax(1) == y).sum())
        seen += len(y)
    model.train(was_training)
    return correct / seen


@torch.inference_mode()
def latency_ms(
    model: nn.Module,
    input_shape,
    batch_size: int = 1,
    threads: int = 1,
    min_run_time: float = 0.5,
    channels_last: bool = False,
):
    """Median forward latency in milliseconds (`workbench.stopwatch`: timeit over blocks, median kept).

    Returns a dict with latency_ms, batch_size and threads, so a number never travels without its setting.
    """
    from workbench.stopwatch import median_ms

    model.eval()
    x = torch.randn(batch_size, *input_shape)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    ms = median_ms(model, x, threads=threads, min_run_time=min_run_time)
    return {"latency_ms": ms, "batch_size": batch_size, "threads": threads}
