"""Run a pruning sweep: dense baseline per seed, then prune + fine-tune + measure for every setting."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import pandas as pd
import torch.nn as nn
from tqdm.auto import tqdm

from workbench import config as wconfig
from workbench import data as wdata
from workbench import metrics, records, training
from workbench.config import RunConfig
from workbench.provenance import provenance
from workbench.pruning import METHODS
from workbench.pruning.schedules import cubic_sparsity, pruning_events


@dataclass
class SweepResult:
    """A sweep's tidy tables: one row per run, one row per layer per run, one row per dense baseline."""

    results: pd.DataFrame
    layers: pd.DataFrame
    dense: pd.DataFrame
    records: list[records.RunRecord]


def as_list(name: str, value) -> list:
    """`value` as a list, or a one-line error if it is not a non-empty list."""
    if isinstance(value, (str, int, float)) or not len(value):
        raise wconfig.ConfigError(f"{name} must be a non-empty list, got {value!r}")
    return list(value)


def check_family(configs: list[RunConfig], family: str, noun: str = "method") -> list[RunConfig]:
    """`configs` if every method is of `family`, else a one-line error listing the family's methods."""
    for c in configs:
        if METHODS.info(c.prune.method)["family"] != family:
            known = ", ".join(METHODS.names(family=family))
            raise wconfig.ConfigError(f"{noun} {c.prune.method!r} is not in family {family!r}; known: {known}")
    return configs


def plan(methods, sparsities, seeds, **params) -> list[RunConfig]:
    """Every RunConfig of the grid, all validated before anything is trained."""
    grid = itertools.product(as_list("seeds", seeds), as_list("methods", methods), as_list("sparsities", sparsities))
    return [wconfig.from_flat(method=m, sparsity=s, seed=seed, **params) for seed, m, s in grid]


def prune_and_finetune(model: nn.Module, config: RunConfig, bundle: wdata.DataBundle) -> nn.Module:
    """Apply the configured method to `model` (in place) and fine-tune it with the mask applied."""
    p, t = config.prune, config.train
    apply = METHODS.get(p.method)
    training.seed_everything(config.seed, t.threads)
    loader = wdata.loader(bundle.train, config.data.batch_size, shuffle=True, seed=config.seed + 1)
    after_step = None
    if METHODS.info(p.method)["schedule"] == "cubic" and p.finetune_epochs > 0:
        events = pruning_events(p.finetune_epochs * len(loader), p.pruning_steps)

        def after_step(step: int, total: int) -> None:
            done = sum(e <= step for e in events)  # pruning steps due by now
            if done and step in events:
                apply(model, cubic_sparsity(done, p.pruning_steps, p.sparsity))
    else:
        apply(model, p.sparsity)
    training.train(model, loader, p.finetune_epochs, p.finetune_lr, t.momentum, t.weight_decay,
                   desc=f"{p.method} {p.sparsity:g}", after_step=after_step)  # fmt: skip
    apply(model, p.sparsity)  # a no-op unless a schedule stopped short of the target
    return model


def measure(model: nn.Module, bundle: wdata.DataBundle) -> tuple[dict, list[dict]]:
    """Accuracy, counts, FLOPs and the per-layer table of a (masked) model."""
    layers = metrics.layer_table(model, bundle.input_shape)
    flops = metrics.flop_count(model, bundle.input_shape)["flops"]
    prunable_flops = sum(r["flops"] for r in layers)
    scalar = {
        "sparsity": metrics.sparsity(model),
        **metrics.count_params(model),
        "flops": flops,
        "effective_flops": flops - prunable_flops + sum(r["sparse_flops"] for r in layers),
        "top1": metrics.top1(model, wdata.loader(bundle.test, 256, shuffle=False)),
    }
    return scalar, layers


class DenseBaselines:
    """The dense model and its measurements per seed, trained (or loaded from the cache) on first use."""

    def __init__(self, bundle: wdata.DataBundle):
        self.bundle = bundle
        self.by_seed: dict[int, tuple[nn.Module, dict]] = {}

    def get(self, config: RunConfig) -> tuple[nn.Module, dict]:
        if config.seed not in self.by_seed:
            model, _ = training.dense_baseline(config, self.bundle)
            self.by_seed[config.seed] = (model, measure(model, self.bundle)[0])
        return self.by_seed[config.seed]

    def rows(self) -> pd.DataFrame:
        return pd.DataFrame([{"seed": seed, **m} for seed, (_, m) in self.by_seed.items()])

    def models(self) -> dict[int, nn.Module]:
        return {seed: model for seed, (model, _) in self.by_seed.items()}


def new_record(
    notebook: str,
    family: str,
    method: str,
    config: RunConfig,
    scalar: dict,
    layers: list,
    made_by: dict,
    target_sparsity: float | None = None,
    **extra,
) -> records.RunRecord:
    """A RunRecord whose id hashes the notebook, method and full configuration."""
    return records.RunRecord(
        run_id=wconfig.config_hash({"notebook": notebook, "config": config, "method": method}),
        notebook=notebook,
        family=family,
        method=method,
        model=config.model.name,
        dataset=config.data.dataset,
        seed=config.seed,
        target_sparsity=target_sparsity,
        config=config.to_dict(),
        metrics={**scalar, **extra},
        layers=layers,
        provenance=made_by,
    )


def run_sweep(notebook: str, family: str, methods, sparsities, seeds, **params) -> SweepResult:
    """Train (or reuse) the dense baselines, then prune, fine-tune and measure every grid point.

    `params` are flat RunConfig names (dataset, model, epochs, finetune_epochs, ...). Every record is written
    under reports/records/<notebook>/ and the tidy table to reports/results/<notebook>.csv.
    """
    configs = check_family(plan(methods, sparsities, seeds, **params), family)
    first = configs[0]
    bundle = wdata.load(first.data.dataset, first.data.split_seed)
    dense, made_by = DenseBaselines(bundle), provenance()
    runs, layer_rows = [], []
    for config in tqdm(configs, desc=f"{notebook} runs"):
        dense_model, dense_metrics = dense.get(config)
        model = prune_and_finetune(copy.deepcopy(dense_model), config, bundle)
        scalar, layers = measure(model, bundle)
        extra = {
            "dense_top1": dense_metrics["top1"],
            "epochs": config.train.epochs,
            "finetune_epochs": config.prune.finetune_epochs,
        }
        record = new_record(
            notebook, family, config.prune.method, config, scalar, layers, made_by, config.prune.sparsity, **extra
        )
        runs.append(record)
        layer_rows += [
            {"method": record.method, "seed": record.seed, "target_sparsity": record.target_sparsity, **row}
            for row in layers
        ]
    records.write_notebook_records(notebook, runs)
    return SweepResult(records.records_frame(runs), pd.DataFrame(layer_rows), dense.rows(), runs)
