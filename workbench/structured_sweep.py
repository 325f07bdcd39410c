"""Structured sweeps: physically remove channels with each filter-ranking criterion, fine-tune, measure.

Beside every structured run at a FLOPs target, an unstructured twin (global magnitude masks leaving the same
number of conv/linear weights) is fine-tuned the same way, so accuracy and speed compare at equal size.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

import pandas as pd
import torch.nn as nn
from tqdm.auto import tqdm

from workbench import config as wconfig
from workbench import data as wdata
from workbench import metrics, records, speed, training
from workbench.config import RunConfig
from workbench.experiment import DenseBaselines, as_list, check_family, measure, new_record
from workbench.provenance import provenance
from workbench.pruning import METHODS, structural
from workbench.pruning.masks import masked_like

FAMILY = "filter-ranking"


@dataclass
class StructuredSweep:
    """Tidy results (column `structure`: structured or unstructured), dense rows, records, dense models."""

    results: pd.DataFrame
    dense: pd.DataFrame
    records: list[records.RunRecord]
    dense_models: dict[int, nn.Module]
    bundle: wdata.DataBundle


def plan(criteria, flops_reductions, seeds, **params) -> list[RunConfig]:
    """Every RunConfig of the grid, validated before anything trains; criteria must be filter-ranking ones."""
    grid = itertools.product(
        as_list("seeds", seeds), as_list("criteria", criteria), as_list("flops_reductions", flops_reductions)
    )
    configs = [wconfig.from_flat(method=c, flops_reduction=r, seed=s, **params) for s, c, r in grid]
    return check_family(configs, FAMILY, noun="criterion")


def prune_physically(dense: nn.Module, config: RunConfig, bundle: wdata.DataBundle) -> nn.Module:
    """A pruned copy of `dense`: `iterative_steps` rounds of prune-to-FLOPs then fine-tune."""
    p, t = config.prune, config.train
    training.seed_everything(config.seed, t.threads)
    model = structural.make_traceable(copy.deepcopy(dense))
    calibration = wdata.calibration_batch(bundle, p.calibration_size, seed=config.seed)
    factory = METHODS.get(p.method)
    dense_flops = metrics.flop_count(model, bundle.input_shape)["flops"]
    loader = wdata.loader(bundle.train, config.data.batch_size, shuffle=True, seed=config.seed + 1)
    for step in range(1, p.iterative_steps + 1):
        goal = dense_flops / p.flops_reduction ** (step / p.iterative_steps)
        now = metrics.flop_count(model, bundle.input_shape)["flops"]
        structural.prune_structured(
            model,
            bundle.input_shape,
            lambda m: factory(m.eval(), calibration),
            structural.Target(flops_reduction=max(1.0, now / goal)),
            p.allocation,
            p.round_to or None,
        )
        training.train(
            model,
            loader,
            p.finetune_epochs,
            p.finetune_lr,
            t.momentum,
            t.weight_decay,
            desc=f"{p.method} {p.flops_reduction:g}x step {step}",
        )
    return model


def masked_twin(dense: nn.Module, pruned: nn.Module, config: RunConfig, bundle: wdata.DataBundle) -> nn.Module:
    """Global magnitude masks on a copy of `dense` leaving as many conv/linear weights as `pruned`, fine-tuned."""
    p, t = config.prune, config.train
    training.seed_everything(config.seed, t.threads)
    twin = masked_like(dense, pruned)
    loader = wdata.loader(bundle.train, config.data.batch_size, shuffle=True, seed=config.seed + 1)
    epochs = p.finetune_epochs * p.iterative_steps
    training.train(twin, loader, epochs, p.finetune_lr, t.momentum, t.weight_decay, desc="masked twin")
    return twin


def timing(dense: nn.Module, model: nn.Module, shape, batch_size: int, threads: int, flops_speedup: float) -> dict:
    """Latency of dense vs `model` (short, alternating rounds), and its efficiency against `flops_speedup`."""
    t = speed.compare_latency(dense, model, shape, batch_size, threads, rounds=3, min_run_time=0.1)
    return {
        "latency_ms_dense": t["latency_ms_dense"],
        "latency_ms": t["latency_ms_pruned"],
        "speedup": t["speedup"],
        "flops_speedup": flops_speedup,
        "efficiency": t["speedup"] / flops_speedup,
        "latency_batch_size": batch_size,
        "latency_threads": threads,
    }


def run_structured_sweep(
    notebook: str,
    criteria,
    flops_reductions,
    seeds,
    latency_batch_size: int = 64,
    latency_threads: int = 1,
    twins: bool = True,
    **params,
) -> StructuredSweep:
    """Dense baseline per seed; for every criterion and FLOPs target a physically pruned, fine-tuned model
    (and, once per seed and target, its masked twin at equal size); records as in experiment.run_sweep."""
    configs = plan(criteria, flops_reductions, seeds, **params)
    bundle = wdata.load(configs[0].data.dataset, configs[0].data.split_seed)
    shape, made_by = bundle.input_shape, provenance()
    dense, runs, twinned = DenseBaselines(bundle), [], set()
    for config in tqdm(configs, desc=f"{notebook} runs"):
        dense_model, dense_metrics = dense.get(config)
        model = prune_physically(dense_model, config, bundle)
        scalar, layers = measure(model, bundle)
        removed = 1 - metrics.prunable_weight_count(model) / metrics.prunable_weight_count(dense_model)
        common = {
            "dense_top1": dense_metrics["top1"],
            "flops_reduction_target": config.prune.flops_reduction,
            "flops_reduction": dense_metrics["flops"] / scalar["flops"],
            "allocation": config.prune.allocation,
            "iterative_steps": config.prune.iterative_steps,
        }
        common.update(timing(dense_model, model, shape, latency_batch_size, latency_threads, common["flops_reduction"]))
        scalar["sparsity"] = removed  # the fraction of the dense model's conv/linear weights that are gone
        runs.append(new_record(notebook, FAMILY, config.prune.method, config, scalar, layers, made_by, **common))
        key = (config.seed, config.prune.flops_reduction)
        if twins and key not in twinned and config.prune.method == configs[0].prune.method:
            twinned.add(key)
            twin = masked_twin(dense_model, model, config, bundle)
            t_scalar, t_layers = measure(twin, bundle)
            # masks promise the FLOPs of their nonzero weights, while dense kernels still run all of them
            promised = dense_metrics["flops"] / t_scalar["effective_flops"]
            t_common = {
                **common,
                **timing(dense_model, twin, shape, latency_batch_size, latency_threads, promised),
                "flops_reduction": promised,
                "matched_to": config.prune.method,
                "target_sparsity": round(removed, 6),
            }
            runs.append(
                new_record(notebook, "magnitude", "global_magnitude", config, t_scalar, t_layers, made_by, **t_common)
            )
    records.write_notebook_records(notebook, runs)
    frame = records.records_frame(runs)
    frame["structure"] = [("unstructured" if r.family == "magnitude" else "structured") for r in runs]
    return StructuredSweep(frame, dense.rows(), runs, dense.models(), bundle)


def agreement(
    model: nn.Module,
    bundle: wdata.DataBundle,
    criteria,
    channel_ratio: float,
    seed: int = 0,
    calibration_size: int = 128,
) -> pd.DataFrame:
    """Jaccard overlap of the channels each pair of criteria removes from `model` at one channel ratio."""
    calibration = wdata.calibration_batch(bundle, calibration_size, seed=seed)
    chosen = {}
    for name in as_list("criteria", criteria):
        training.seed_everything(seed)
        copy_ = structural.make_traceable(copy.deepcopy(model)).eval()
        removed = structural.prune_to_ratio(
            copy_, bundle.input_shape, METHODS.get(name)(copy_, calibration), channel_ratio
        )
        chosen[name] = {(layer, i) for layer, idxs in removed for i in idxs}
    names = list(chosen)
    jaccard = [[_jaccard(chosen[a], chosen[b]) for b in names] for a in names]
    return pd.DataFrame(jaccard, index=names, columns=names)


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else math.nan
