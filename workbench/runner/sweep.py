"""Sweeps: one grid of methods x targets x hyperparameters x seeds for every family, run serially or on Dask.

Every recipe of the grid is built and validated before anything trains. Dense baselines are trained first, once per
distinct dense key (in parallel too), then the runs; each run writes its record when it finishes, and a run whose
record exists is skipped, so an interrupted sweep started again loses and recomputes nothing that finished.

Progress: a terminal bar when run by hand; one line per sweep when WORKBENCH_PROGRESS=0 (executed notebooks);
and, when WORKBENCH_PROGRESS_FILE names a file, the current phase, count and run written there for `workbench run`
to display.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm  # the plain bar: tqdm.auto warns 'IProgress not found' in kernels without ipywidgets

from workbench import allocator, checks, paths
from workbench.methods.base import METHODS
from workbench.provenance import provenance
from workbench.records import RunRecord, records_frame, write_atomic, write_results_csv
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

    def model(self, run_id: str, seed: int):
        """The pruned (or gated) model a main run of this sweep finished with, from the run cache; a model missing
        there (a fresh clone has the records only) is computed again first, exactly as the run made it."""
        if not store.run_file(run_id).exists():
            rec = next(r for r in self.records if r.run_id == run_id)
            recipe_ = next(r for r in self.recipes if run_id in {i for _, _, i in pipeline.planned_runs(r)})
            with torch.enable_grad():  # the caller may be inside no_grad; training is not
                pipeline.run_recipe(recipe_, rec.notebook, models=True)
        return store.restore_model(self.dense_model(seed), store.run_file(run_id), self.bundle.input_shape)[0]

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


def is_axis(value, default) -> bool:
    """A list is a grid axis, unless the field itself holds a sequence (then a list of lists is the axis)."""
    if not isinstance(value, list):
        return False
    holds_sequence = isinstance(default, (tuple, list))
    return not holds_sequence or all(isinstance(v, (tuple, list)) for v in value)


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
    defaults = {f.name: f.default for f in dataclasses.fields(METHODS.get(method).Hparams)}
    axes = {k: (v if is_axis(v, defaults.get(k)) else [v]) for k, v in merged.items()}
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def check_method(name: str, family: str | None = None) -> str:
    """`name` if it is a registered method (of `family`, if given), else one line naming the accepted ones."""
    if not isinstance(name, str):
        raise checks.ConfigError(f"a method is a name (a string), got {name!r}")
    if family is None:
        return METHODS.check(name)
    known = METHODS.names(family=family)
    if name in known:
        return name
    if name in METHODS:
        raise checks.ConfigError(f"method {name!r} is not in family {family!r}; known: {', '.join(known)}")
    close = difflib.get_close_matches(str(name), known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise checks.ConfigError(f"unknown {family} method {name!r}{hint}; known: {', '.join(known)}")


def check_executor(executor: Any) -> Any:
    """`executor` if sweep() accepts it (serial, local, a scheduler address or a dask Client), else one line."""
    if isinstance(executor, str) and (executor in ("serial", "local") or "://" in executor):
        return executor
    if type(executor).__name__ == "Client":  # a dask.distributed Client (not imported to check)
        return executor
    raise checks.ConfigError(
        f"unknown executor {executor!r}; known: serial, local, a scheduler address such as tcp://host:8786, "
        "a dask Client"
    )


def plan(methods, targets, seeds, *, target_kind=None, hparams=None, family=None, **params) -> list[Recipe]:
    """Every recipe of the grid, all validated before anything trains (order: seed, method, hparams, target)."""
    methods, seeds = as_list("methods", methods), as_list("seeds", seeds)
    for name in methods:
        check_method(name, family)
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
    grid = dict(methods=methods, targets=targets, seeds=seeds, target_kind=target_kind, hparams=hparams, family=family)
    return sweeps(notebook, {"": {**grid, **params}}, executor=executor, workers=workers, progress=progress)[""]


def sweeps(
    notebook: str,
    grids: dict[str, dict[str, Any]],
    *,
    executor: str | Any = "serial",
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, SweepResult]:
    """Several grids of one notebook run as one pool (one dense phase, one Dask cluster, runs balanced over workers).

    `grids` maps a name to `sweep`'s keyword arguments (methods, targets, seeds, target_kind, hparams, family and
    flat recipe parameters). Every grid is planned and checked before anything trains; the result maps each name to
    its SweepResult, and the notebook's CSV holds the records of all of them.
    """
    paths.safe_name("notebook", notebook)
    check_executor(executor)
    planned = {name: plan(**grid) for name, grid in grids.items()}
    recipes = [r for rs in planned.values() for r in rs]
    made_by = provenance()
    todo = list({(r.run_id(), r.controls): r for r in recipes if not pipeline.finished(r, notebook)}.values())
    pipeline.check_data(todo)
    report = Progress(notebook, len(recipes), progress)
    if todo:
        with executor_for(executor, workers, recipes[0].train.threads) as run:
            run(train_dense_task, dense_representatives(todo), "dense baselines", report)
            run(pipeline.run_recipe, [(r, notebook, made_by) for r in todo], "runs", report)
    out = {}
    for name, rs in planned.items():
        records = [rec for r in rs for rec in pipeline.run_recipe(r, notebook)]  # all stored now: read back
        out[name] = SweepResult(rs, records, records_frame(records), layer_frame(records), dense_frame(rs, notebook))
    write_results_csv(notebook, [rec for result in out.values() for rec in result.records])
    report.finish(len(todo))
    return out


def describe(args: tuple) -> str:
    """A job of the sweep in a few words: 'lamp sparsity=0.9 seed 1' or 'dense seed 1'."""
    r = args[0]
    if len(args) == 2:  # (recipe, rewind steps): a dense baseline
        return f"dense {r.model.name} seed {r.seed}"
    return f"{r.method} {r.target.label()} seed {r.seed}"


class Progress:
    """A sweep's progress: a file for `workbench run` (WORKBENCH_PROGRESS_FILE), a terminal bar when run by hand
    (unless WORKBENCH_PROGRESS=0 or progress=False), and one closing line per sweep (unless progress=False)."""

    def __init__(self, notebook: str, total: int, enabled: bool = True):
        self.notebook, self.total, self.enabled, self.start = notebook, total, enabled, time.monotonic()
        self.file = os.environ.get("WORKBENCH_PROGRESS_FILE") or None
        self.bars = enabled and not self.file and os.environ.get("WORKBENCH_PROGRESS") != "0"
        self.bar, self.label, self.done, self.phase_total = None, "", 0, 0

    def phase(self, label: str, total: int) -> None:
        """A phase of `total` jobs begins (dense baselines, then runs)."""
        self.label, self.phase_total, self.done = label, total, 0
        if self.bars:
            self.bar = tqdm(total=total, desc=f"{self.notebook} {label}", leave=False, mininterval=0.5)
        self._write("")

    def started(self, current: str) -> None:
        """A job begins (serial runs only: parallel ones report when they end)."""
        self._write(current)

    def advance(self, current: str = "") -> None:
        """A job ended."""
        self.done += 1
        if self.bar is not None:
            self.bar.update()
        self._write(current)

    def end_phase(self) -> None:
        """The phase ended: its bar goes."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def finish(self, computed: int) -> None:
        """The sweep ended: one line saying how many runs it computed and read back."""
        self._write("", finished=True)
        if self.enabled:
            seconds = time.monotonic() - self.start
            print(f"{self.notebook}: {self.total} run(s), {computed} computed, {self.total - computed} read from "
                  f"records, {seconds:.1f} s", file=sys.stdout, flush=True)  # fmt: skip

    def _write(self, current: str, finished: bool = False) -> None:
        if not self.file:
            return
        state = {"notebook": self.notebook, "phase": self.label, "done": self.done, "total": self.phase_total,
                 "current": current, "runs": self.total, "finished": finished}  # fmt: skip
        with contextlib.suppress(OSError):  # progress is a courtesy: never fail a sweep over it
            write_atomic(Path(self.file), json.dumps(state))


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
    """Context manager yielding run(fn, list of argument tuples, label, Progress) -> results in order."""

    def __init__(self, executor, workers: int | None, threads: int):
        self.executor, self.workers, self.threads = executor, workers, threads
        self.client = self.cluster = None

    def __enter__(self):
        if isinstance(self.executor, str) and self.executor == "serial":
            return self.serial
        import dask
        from dask.distributed import Client, LocalCluster

        if isinstance(self.executor, Client):
            self.client = self.executor
        elif self.executor == "local":
            n = self.workers or max(1, (os.cpu_count() or 1) // self.threads)
            # malloc reads its settings when a process starts: Dask sets its own (a 64 KiB trim threshold) in the
            # environment right before spawning a worker, so ours go there too (workbench/allocator.py)
            environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **allocator.SETTINGS}
            with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                self.cluster = LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
                )
            self.client = Client(self.cluster)
        else:
            self.client = Client(check_executor(self.executor))
        return self.parallel

    def __exit__(self, *exc):
        if self.cluster is not None:
            self.client.close()
            self.cluster.close()
        return False

    @staticmethod
    def serial(fn, jobs, label, progress: Progress):
        progress.phase(label, len(jobs))
        out = []
        for args in jobs:
            progress.started(describe(args))
            out.append(fn(*args))
            progress.advance()
        progress.end_phase()
        return out

    def parallel(self, fn, jobs, label, progress: Progress):
        from dask.distributed import as_completed

        futures = [self.client.submit(fn, *args, pure=False) for args in jobs]
        names = {f.key: describe(args) for f, args in zip(futures, jobs, strict=True)}
        progress.phase(label, len(futures))
        failed = None
        for future in as_completed(futures):
            progress.advance(f"{names[future.key]} ended")
            if future.status == "error" and failed is None:
                failed = future
        progress.end_phase()
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


def dense_frame(recipes: list[Recipe], notebook: str) -> pd.DataFrame:
    """The dense reference of each distinct dense run of the sweep (seed, top1, flops, params).

    Each reference is stored beside the notebook's records (`<records>/<notebook>/dense/<dense key>.json`, written
    atomically with its provenance) the first time it is measured, so a checkout that has the records reads it back
    instead of training the dense model again; models are trained only where a cell needs one.
    """
    seen, rows = set(), []
    for r in recipes:
        key = r.dense_key()
        if key in seen:
            continue
        seen.add(key)
        rows.append({"seed": r.seed, "dense_key": key, **dense_reference(r, notebook)})
    return pd.DataFrame(rows)


def dense_reference(recipe_: Recipe, notebook: str) -> dict:
    """The dense model's reference numbers of `recipe_`: read from its stored file, else measured and stored."""
    path = paths.records_dir(notebook) / "dense" / f"{recipe_.dense_key()}.json"
    if path.exists():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return dict(json.loads(path.read_text(encoding="utf-8"))["reference"])
    reference = store.train_dense(recipe_, store.bundle_of(recipe_)).reference
    made = {"dense_key": recipe_.dense_key(), "seed": recipe_.seed, "reference": reference, "provenance": provenance()}
    write_atomic(path, json.dumps(made, indent=1))
    return dict(reference)
