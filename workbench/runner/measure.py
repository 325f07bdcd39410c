"""One measurement vocabulary for every family (a value that means nothing for a run is left out, never faked).

- top1 / val_top1: accuracy on the test / validation split (fractions); dense_top1: the dense model's test top-1.
- params, nonzero_params: parameters stored, and those not zero (masks applied).
- flops: FLOPs the model executes as stored (torch.utils.flop_counter, 2 per multiply-add); a masked model still
  executes its zeros. effective_flops: 2 x the nonzero multiply-adds of conv/linear layers plus everything else.
- flops_reduction = dense flops / flops; effective_flops_reduction = dense flops / effective_flops.
- sparsity: fraction of the dense model's prunable (conv/linear) weights that are zero or gone.
- latency_ms, latency_ms_dense, speedup, efficiency (= speedup / effective FLOPs reduction), where asked.
- serialized_bytes: the model's state as torch.save writes it (masks folded: zeros stored dense);
  serialized_bytes_csr: the same with every conv/linear weight as a sparse CSR matrix (workbench.deploy.storage).
- flops_mean, flops_p50, flops_p95, flops_mean_reduction (= dense flops / flops_mean): for gated models, whose cost
  depends on the input (counted from the gates' decisions, workbench.gating.cost); with them `flops_per_input` (test
  split order) and `gate_activity` (per gated layer, how often each channel is on).
"""

from __future__ import annotations

import numpy as np
import torch.nn as nn

from workbench import data as wdata
from workbench import gating, metrics, speed
from workbench.deploy import storage
from workbench.gating import cost

FLOPS_UNIT = "FLOPs (2 per multiply-add, torch.utils.flop_counter)"


def reference(model: nn.Module, bundle: wdata.DataBundle) -> dict[str, float]:
    """The dense model's counts that targets and reductions are measured against, and its accuracy."""
    return {
        "flops": metrics.flop_count(model, bundle.input_shape)["flops"],
        "params": metrics.count_params(model)["params"],
        "prunable_weights": metrics.prunable_weight_count(model),
        "top1": metrics.top1(model, wdata.loader(bundle.test, 256, shuffle=False)),
        "val_top1": metrics.top1(model, wdata.loader(bundle.val, 256, shuffle=False)) if len(bundle.val) else None,
    }


def measure(
    model: nn.Module, bundle: wdata.DataBundle, ref: dict, dense: nn.Module | None = None, latency=None
) -> tuple[dict, list[dict]]:
    """The scalar metrics and the per-layer table of `model`, against the dense reference `ref`."""
    layers = metrics.layer_table(model, bundle.input_shape)
    flops = metrics.flop_count(model, bundle.input_shape)["flops"]
    effective = flops - sum(r["flops"] for r in layers) + sum(r["sparse_flops"] for r in layers)
    counts = metrics.count_params(model)
    out = {
        "top1": metrics.top1(model, wdata.loader(bundle.test, 256, shuffle=False)),
        "val_top1": metrics.top1(model, wdata.loader(bundle.val, 256, shuffle=False)) if len(bundle.val) else None,
        "dense_top1": ref["top1"],
        **counts,
        "flops": flops,
        "effective_flops": effective,
        "flops_unit": FLOPS_UNIT,
        "dense_flops": ref["flops"],
        "flops_reduction": ref["flops"] / flops,
        "effective_flops_reduction": ref["flops"] / effective if effective else None,
        "sparsity": 1 - sum(r["nonzero"] for r in layers) / ref["prunable_weights"],
        "serialized_bytes": storage.serialized_bytes(model),
        "serialized_bytes_csr": storage.csr_bytes(model),
    }
    if gating.gated_units(model):
        out.update(flops_distribution(model, bundle))
        out["flops_mean_reduction"] = ref["flops"] / out["flops_mean"]
        out["gate_activity"] = cost.gate_activity(model, wdata.loader(bundle.test, 256, shuffle=False))
    if latency is not None and dense is not None:
        t = speed.compare_latency(dense, model, bundle.input_shape, latency.batch_size, latency.threads, rounds=3,
                                  min_run_time=0.1)  # fmt: skip
        out.update(
            latency_ms=t["latency_ms_pruned"],
            latency_ms_dense=t["latency_ms_dense"],
            speedup=t["speedup"],
            efficiency=t["speedup"] / out["effective_flops_reduction"],
            latency_batch_size=latency.batch_size,
            latency_threads=latency.threads,
        )
    return out, layers


def flops_distribution(model: nn.Module, bundle: wdata.DataBundle) -> dict:
    """Mean, median and 95th percentile over the test set of the FLOPs each input executes, and the list of them."""
    counted = cost.costs(model, bundle.input_shape)
    per_input = np.concatenate(
        [cost.per_input_flops(model, x, counted).numpy() for x, _ in wdata.loader(bundle.test, 256, shuffle=False)]
    )
    return {**cost.summary(per_input), "flops_per_input": per_input.tolist()}
