"""Notebook 09's fair setup: every family's methods on one dense model, one fine-tuning budget and one data set.

The grids are defined once here (the notebook and its profile checks plan the same ones). Every method of a seed
starts from the same trained dense model (same data, model, training and seed); each is fine-tuned for the same
epochs with the same cosine schedule from the same learning rate. What a method adds by its own definition is stated
in `EXTRA_COST`, never hidden: GReg trains with its growing penalty before removal, EagleEye scores candidates, DGNet
learns its gates during the fine-tuning, and IMP splits the fine-tuning budget over its levels (iterative magnitude
pruning with fine-tuning, not rewinding: the lottery ticket proper, which retrains from an early step, is notebook
08's subject).

Methods that shape the dense training itself (slimming, ssl) cannot share the dense model and are left to notebook 05.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench import checks
from workbench.compare.stats import kind_of
from workbench.methods.base import METHODS
from workbench.runner import pipeline
from workbench.runner.sweep import plan

NOTEBOOK = "09-comparison"
BASELINES = {"flops_reduction": "random_filter", "sparsity": "random"}
"""The random baseline of each target kind: random channels at the same FLOPs target, random weights at the same
sparsity."""
EXTRA_COST = {
    "greg": "trains `reg_epochs` more with its growing penalty before removal (the method)",
    "eagleeye": "scores `candidates` random pruned networks after adaptive batch norm (the search)",
    "nsga2": "scores population x generations candidates (the search)",
    "dgnet": "learns its gates during the same fine-tuning (the method)",
    "imp": "splits the same fine-tuning epochs over its levels (iterative)",
}
KINDS = ("structured", "dynamic", "unstructured", "lottery")


def check_methods(structured, dynamic, unstructured, lottery) -> None:
    """One line for a method in the wrong list (structured ones remove channels, unstructured ones mask weights) or
    one that trains its own dense model, and for a list of either target kind without its random baseline."""
    for kind, names in zip(KINDS, (structured, dynamic, unstructured, lottery), strict=True):
        for name in names:
            METHODS.check(name)
            if kind == "structured" and METHODS.get(name).shapes_dense_training():
                raise checks.ConfigError(
                    f"{name!r} trains its own dense model; the comparison shares one (notebook 05)"
                )
            if not _fits(name, kind):
                accepted = ", ".join(n for n in METHODS.names() if _fits(n, kind))
                raise checks.ConfigError(f"{name!r} cannot be in {kind}; accepted there: {accepted}")
    for kind, baseline in BASELINES.items():
        names = structured if kind == "flops_reduction" else unstructured
        if names and baseline not in names:
            raise checks.ConfigError(f"the {kind} methods must include their random baseline {baseline!r}")


def _fits(name: str, kind: str) -> bool:
    method, family = METHODS.get(name), METHODS.info(name)["family"]
    if kind == "structured":
        return method.structural and not method.shapes_dense_training()
    if kind == "dynamic":
        return family == "dynamic" and "flops_reduction" in [t.kind for t in method.targets]
    if kind == "lottery":
        return family == "lottery-ticket"
    return not method.structural and family not in ("dynamic", "lottery-ticket")


def grids(
    *,
    dataset: str,
    model: str,
    seeds,
    epochs: int,
    batch_size: int,
    lr: float,
    structured,
    dynamic,
    unstructured,
    lottery,
    flops_reductions,
    sparsities,
    finetune_epochs: int,
    finetune_lrs,
    imp_levels: int,
    greg_reg_epochs: int,
    eagleeye_candidates: int,
    calibration_size: int,
    latency_batch_size: int,
    twin_method: str | None,
) -> dict[str, dict[str, Any]]:
    """One grid per method kind and fine-tuning learning rate, named '<kind> lr=<lr>'; every grid shares the
    dense configuration and the fine-tuning epochs; latency is measured at the first (the comparison's) LR only,
    where the speed of each family is read."""
    check_methods(structured, dynamic, unstructured, lottery)
    if not finetune_lrs or isinstance(finetune_lrs, (int, float, str)):
        raise checks.ConfigError(f"finetune_lrs must be a non-empty list of learning rates, got {finetune_lrs!r}")
    checks.integer("imp_levels", imp_levels, 1)
    if lottery and finetune_epochs % imp_levels:
        raise checks.ConfigError(
            f"finetune_epochs={finetune_epochs} does not split over imp_levels={imp_levels}; accepted: a multiple"
        )
    if twin_method is not None and twin_method not in structured:
        raise checks.ConfigError(
            f"twin_method {twin_method!r} is not a structured method here; accepted: {', '.join(structured)}"
        )
    common = dict(
        seeds=seeds, dataset=dataset, model=model, epochs=epochs, batch_size=batch_size, lr=lr,
        calibration_size=calibration_size, finetune_epochs=finetune_epochs,
    )  # fmt: skip
    hparams = {
        "*": {"round_to": 0},
        "greg": {"reg_epochs": greg_reg_epochs},
        "eagleeye": {"candidates": eagleeye_candidates},
    }
    out: dict[str, dict[str, Any]] = {}
    for i, lr in enumerate(finetune_lrs):
        checks.number("finetune_lr", lr, 0.0, open_low=True)
        at = {**common, "finetune_lr": float(lr), "measure_latency": i == 0}
        if i == 0:
            at["latency_batch_size"] = latency_batch_size
        flops_methods = [*structured, *dynamic]
        if flops_methods:
            twins = {twin_method: ["masked_twin"]} if twin_method and i == 0 else {}
            out[f"structured lr={lr:g}"] = {
                **at, "methods": flops_methods, "targets": list(flops_reductions), "target_kind": "flops_reduction",
                "hparams": {k: v for k, v in hparams.items() if k == "*" or k in flops_methods}, "controls": twins,
            }  # fmt: skip
        if unstructured:
            out[f"unstructured lr={lr:g}"] = {
                **at, "methods": list(unstructured), "targets": list(sparsities), "target_kind": "sparsity",
            }  # fmt: skip
        if lottery:
            out[f"lottery lr={lr:g}"] = {
                **at, "methods": list(lottery), "targets": list(sparsities), "target_kind": "sparsity",
                "schedule": "iterative", "pruning_steps": imp_levels, "finetune_epochs": finetune_epochs // imp_levels,
            }  # fmt: skip
    return out


def planned(grids_: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per run the grids plan (main runs, controls, every level): run_id, grid, kind and fine-tuning LR.
    Merged with `load_records()` on run_id, it selects exactly this setup's records (a profile's, for instance)."""
    rows = []
    for name, grid in grids_.items():
        for r in plan(**grid):
            for _role, _level, run_id in pipeline.planned_runs(r):
                rows.append({"run_id": run_id, "grid": name, "kind": kind_of(r.method), "finetune_lr": r.finetune.lr})
    return pd.DataFrame(rows).drop_duplicates("run_id")
