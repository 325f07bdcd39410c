"""Sweeps: one grid of methods x targets x hyperparameters x seeds for every family, run serially or on Dask.

Every recipe of the grid is built and validated before anything trains. Dense baselines are trained first, once per
distinct dense key (in parallel too), then the runs; each run writes its record when it finishes, and a run whose
record exists is skipped, so an interrupted sweep started again loses and recomputes nothing that finished.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from workbench import checks
from workbench.methods.base import METHODS
from workbench.provenance import provenance
from workbench.records import RunRecord, records_frame, write_results_csv
from workbench.runner import pipeline, store
from workbench.runner.recipe import Recipe, recipe
from workbench.targets import Target, make_target


@dataclass
class SweepResult:
    """A sweep's records and tidy tables: one row per run, one per layer per run, one per dense baseline."""

    recipes: list[Recipe]
    records: list[RunRecord]
    results: pd.DataFrame
    layers: pd.DataFrame
    dense: pd.DataFrame

    def dense_model(self, seed: int):
        """The trained dense model of `seed` (from the cache)."""
        first = next(r for r in self.recipes if r.seed == seed)
        return store.train_dense(first, store.bundle_of(first)).model

    @property
    def bundle(self):
        return store.bundle_of(self.recipes[0])


def as_list(name: str, value) -> list:
    """`value` as a list, or a one-line error if it is not a non-empty list."""
    if isinstance(value, (str, int, float, dict)) or value is None or not len(value):
        raise checks.ConfigError(f"{name} must be a non-empty list, got {value!r}")
    return list(value)


def targets_of(values, kind: str | None) -> list[Target]:
    """Targets from Target objects, (kind, value) pairs, or plain numbers of `kind`."""
    out = []
    for value in as_list("targets", values):
        if isinstance(value, Target):
            out.append(value)
        elif isinstance(value, (tuple, list)):
            out.append(make_target(*value))
        elif kind is None:
            raise checks.ConfigError(f"target {value!r} is a plain number: give target_kind= (e.g. 'sparsity')")
        else:
            out.append(make_target(kind, value))
    return out


def hparam_grid(method: str, hparams: dict[str, dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The hyperparameter settings of `method`: its own entry merged over the '*' entry (fields it has);
    a list value is an axis of the grid."""
    hparams = hparams or {}
    for name in hparams:
        if name != "*":
            METHODS.check(name)
    fields = METHODS.get(method).Hparams.names()
    merged = {k: v for k, v in hparams.get("*", {}).items() if k in fields}
    merged.update(hparams.get(method, {}))
    axes = {k: (v if isinstance(v, list) else [v]) for k, v in merged.items()}
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def plan(methods, targets, seeds, *, target_kind=None, hparams=None, family=None, **params) -> list[Recipe]:
    """Every recipe of the grid, all validated before anything trains (order: seed, method, hparams, target)."""
    methods, seeds = as_list("methods", methods), as_list("seeds", seeds)
    for name in methods:
        METHODS.check(name)
        if family is not None and METHODS.info(name)["family"] != family:
            known = ", ".join(METHODS.names(family=family))
            raise checks.ConfigError(f"method {name!r} is not in family {family!r}; known: {known}")
    unknown_star = set((hparams or {}).get("*", {})) - {f for m in methods for f in METHODS.get(m).Hparams.names()}
    if unknown_star:
        raise checks.ConfigError(f"hyperparameter {sorted(unknown_star)[0]!r} belongs to none of {', '.join(methods)}")
    goals = targets_of(targets, target_kind)
    return [
        recipe(m, t, seed=s, hparams=hp, **params)
        for s in seeds
        for m in methods
        for hp in hparam_grid(m, hparams)
        for t in goals
    ]


def sweep(
    notebook: str,
    methods,
    targets,
    seeds,
    *,
    target_kind: str | None = None,
    hparams: dict | None = None,
    family: str | None = None,
    executor: str | Any = "serial",
    workers: int | None = None,
    progress: bool = True,
    **params,
) -> SweepResult:
    """Run every recipe of the grid (skipping finished runs) and write the notebook's CSV from their records.

    Args:
        notebook: the tag records are filed under (reports/records/<notebook>/).
        methods, targets, seeds: the grid; targets are Target objects, (kind, value) pairs or numbers of `target_kind`.
        hparams: {method or '*': {field: value or [values]}}.
        family: if given, every method must belong to it.
        executor: "serial", "local" (a Dask LocalCluster on this machine), a scheduler address ("tcp://host:8786")
            or a dask.distributed Client.
        workers: LocalCluster workers (default: cores // threads per run).
        params: flat recipe parameters (dataset, model, epochs, finetune_epochs, schedule, controls, ...).
    """
    recipes = plan(methods, targets, seeds, target_kind=target_kind, hparams=hparams, family=family, **params)
    made_by = provenance()
    todo = [r for r in recipes if not pipeline.finished(r, notebook)]
    if todo:
        with executor_for(executor, workers, recipes[0].train.threads) as run:
            run(train_dense_task, dense_representatives(todo), "dense baselines", progress)
            run(pipeline.run_recipe, [(r, notebook, made_by) for r in todo], f"{notebook} runs", progress)
    records = [rec for r in recipes for rec in pipeline.run_recipe(r, notebook)]  # all stored now: read back
    write_results_csv(notebook, records)
    return SweepResult(recipes, records, records_frame(records), layer_frame(records), dense_frame(recipes))


def dense_representatives(recipes: list[Recipe]) -> list[tuple]:
    """One (recipe, rewind steps) per distinct dense key, so each dense model is trained once."""
    jobs: dict[str, tuple[Recipe, set[int]]] = {}
    for r in recipes:
        first, steps = jobs.setdefault(r.dense_key(), (r, set()))
        if r.schedule.rewind_step is not None:
            steps.add(r.schedule.rewind_step)
    return [(r, tuple(sorted(steps))) for r, steps in jobs.values()]


def train_dense_task(recipe_: Recipe, save_steps: tuple[int, ...]) -> str:
    store.train_dense(recipe_, store.bundle_of(recipe_), save_steps)
    return recipe_.dense_key()


class executor_for:  # noqa: N801  (used as a context manager, like open)
    """Context manager yielding run(fn, list of argument tuples, label, progress) -> results in order."""

    def __init__(self, executor, workers: int | None, threads: int):
        self.executor, self.workers, self.threads = executor, workers, threads
        self.client = self.cluster = None

    def __enter__(self):
        if isinstance(self.executor, str) and self.executor == "serial":
            return self.serial
        from dask.distributed import Client, LocalCluster

        if isinstance(self.executor, Client):
            self.client = self.executor
        elif self.executor == "local":
            n = self.workers or max(1, (os.cpu_count() or 1) // self.threads)
            self.cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
            )
            self.client = Client(self.cluster)
        elif isinstance(self.executor, str) and "://" in self.executor:
            self.client = Client(self.executor)
        else:
            raise checks.ConfigError(
                f"unknown executor {self.executor!r}; known: serial, local, a scheduler address, a dask Client"
            )
        return self.parallel

    def __exit__(self, *exc):
        if self.cluster is not None:
            self.client.close()
            self.cluster.close()
        return False

    @staticmethod
    def serial(fn, jobs, label, progress):
        return [fn(*args) for args in tqdm(jobs, desc=label, disable=not progress or len(jobs) < 2)]

    def parallel(self, fn, jobs, label, progress):
        from dask.distributed import as_completed

        futures = [self.client.submit(fn, *args, pure=False) for args in jobs]
        bar = tqdm(total=len(futures), desc=label, disable=not progress)
        failed = None
        for future in as_completed(futures):
            bar.update()
            if future.status == "error" and failed is None:
                failed = future
        bar.close()
        if failed is not None:
            failed.result()  # re-raises the worker's exception here; finished runs' records are already stored
        return [f.result() for f in futures]


def layer_frame(records: list[RunRecord]) -> pd.DataFrame:
    """One row per layer per run, with the run's method, role, seed and target."""
    rows = [
        {"method": r.method, "role": r.role, "seed": r.seed, "level": r.level, "target_kind": r.target.get("kind"),
         "target_value": r.target.get("value"), **layer}
        for r in records
        for layer in r.layers
    ]  # fmt: skip
    return pd.DataFrame(rows)


def dense_frame(recipes: list[Recipe]) -> pd.DataFrame:
    """The dense reference of each distinct dense run of the sweep (seed, top1, flops, params)."""
    seen, rows = set(), []
    for r in recipes:
        if r.dense_key() in seen:
            continue
        seen.add(r.dense_key())
        run = store.train_dense(r, store.bundle_of(r))
        rows.append({"seed": r.seed, "dense_key": r.dense_key(), **run.reference})
    return pd.DataFrame(rows)
