"""Run one recipe: dense run -> pruning schedule -> fine-tune -> controls -> measure -> one record per run.

Each run's record is written atomically the moment it finishes, and the model of every finished level is kept, so
a recipe interrupted at any point continues where it stopped and recomputes nothing that finished.
"""

from __future__ import annotations

import torch.nn as nn

from workbench import checks, training
from workbench.methods.base import Context
from workbench.provenance import provenance
from workbench.pruning.masks import refresh_masked_weights
from workbench.records import RunRecord, read_record, write_record
from workbench.runner import controls, measure, schedules, store
from workbench.runner.recipe import Recipe
from workbench.targets import Sparsity, Target


def planned_runs(recipe: Recipe) -> list[tuple[str, int | None, str]]:
    """(role, level, run id) of every run the recipe makes, in order: the levels, then the controls."""
    levels = recipe.schedule.levels
    runs = [("main", level if levels > 1 else None) for level in range(1, levels + 1)]
    runs += [(name, None) for name in recipe.controls]
    return [(role, level, recipe.run_id(role, level)) for role, level in runs]


def check_data(recipes: list[Recipe]) -> None:
    """One-line errors, before anything trains, for calibration batches larger than the training split."""
    for recipe in recipes:
        if recipe.method_obj.needs_data:
            size = len(store.bundle_of(recipe).train)
            if recipe.calibration_size > size:
                raise checks.ConfigError(
                    f"calibration_size {recipe.calibration_size} is larger than the training split of "
                    f"{recipe.data.dataset} ({size} examples); accepted: 1 to {size}"
                )


def finished(recipe: Recipe, notebook: str) -> bool:
    """True if every run of `recipe` has its record."""
    return all(read_record(notebook, run_id) is not None for _, _, run_id in planned_runs(recipe))


def finetune(model: nn.Module, recipe: Recipe, bundle, epochs: int, lr: float, seed: int, callbacks=(), desc=""):
    """Train `model` in place for `epochs` at `lr` (cosine to 0), with the recipe's SGD settings."""
    steps = epochs * training.steps_per_epoch(bundle.train, recipe.data.batch_size)
    if steps == 0:
        return
    t = recipe.train
    training.seed_everything(seed, t.threads)
    training.train(
        model, bundle.train, batch_size=recipe.data.batch_size, lr=lr, momentum=t.momentum,
        weight_decay=t.weight_decay, total_steps=steps, seed=seed, callbacks=callbacks, desc=desc,
    )  # fmt: skip
    refresh_masked_weights(model)


def run_recipe(recipe: Recipe, notebook: str, made_by: dict | None = None) -> list[RunRecord]:
    """Every run of `recipe` (levels and controls) as records, computing only those not stored yet."""
    planned = planned_runs(recipe)
    stored = {run_id: read_record(notebook, run_id) for _, _, run_id in planned}
    if all(stored.values()):
        return [stored[run_id] for _, _, run_id in planned]
    made_by = made_by or provenance()
    bundle = store.bundle_of(recipe)
    rewind_step = recipe.schedule.rewind_step
    dense = store.train_dense(recipe, bundle, save_steps=() if rewind_step is None else (rewind_step,))
    rewind_state = None if rewind_step is None else dense.checkpoint(rewind_step).model_state
    ctx = store.context(recipe, bundle, dense.reference)
    hp, levels = recipe.hparams, recipe.schedule.levels
    shape = bundle.input_shape

    def record(model, role, level, target: Target, parent) -> RunRecord:
        scalar, layers = measure.measure(model, bundle, dense.reference, dense.model, recipe.latency)
        rec = RunRecord(
            run_id=recipe.run_id(role, level), notebook=notebook, family=recipe.family, method=recipe.method,
            hparams=hp.as_dict(), target=target.as_dict(), role=role, seed=recipe.seed, model=recipe.model.name,
            dataset=recipe.data.dataset, recipe=recipe.to_dict(), metrics=scalar, parent=parent, level=level,
            levels=levels if level else None, layers=layers, provenance=made_by,
        )  # fmt: skip
        write_record(rec)
        return rec

    at_init = recipe.schedule.prune_at == "init"
    start_state = dense.checkpoint(0).model_state if at_init else None  # pruning at initialisation
    model, removed, parent, done = store.rebuild(dense.model, shape, [], {}, start_state), [], None, []
    for role, level, run_id in planned[:levels]:
        at = level or 1
        target = schedules.level_target(recipe.target, at, levels)
        if stored[run_id] is not None and store.run_file(run_id).exists():
            model, removed = store.restore_model(dense.model, store.run_file(run_id), shape)
        else:
            model, removed = prune_level(model, removed, recipe, bundle, ctx, at, dense, rewind_state)
            stored[run_id] = record(model, role, level, target, parent)
            store.save_model(model, store.run_file(run_id), removed)
        ctx.extra["previous_channel_ratio"] = getattr(target, "value", 0.0)
        parent = run_id
        done.append(stored[run_id])
    start = dense.model if rewind_state is None else store.rebuild(dense.model, shape, [], {}, rewind_state)
    for index, (role, _, run_id) in enumerate(planned[levels:]):
        if stored[run_id] is None:
            control, epochs, lr = controls.BUILDERS[role](recipe, model, removed, dense, bundle, start)
            finetune(control, recipe, bundle, epochs, lr, seed=recipe.seed * 100 + 50 + index, desc=role)
            stored[run_id] = record(control, role, None, recipe.target, parent)
        done.append(stored[run_id])
    return done


def prune_level(model, removed, recipe: Recipe, bundle, ctx: Context, level: int, dense, rewind_state):
    """Prune to the level's target (or gradually during fine-tuning), rewind if asked, fine-tune; (model, removed)."""
    method, hp = recipe.method_obj, recipe.hparams
    ctx.level, ctx.levels = level, recipe.schedule.levels
    target = schedules.level_target(recipe.target, level, recipe.schedule.levels)
    callbacks = list(method.finetune_callbacks(hp, ctx))
    at_init = recipe.schedule.prune_at == "init"  # then the pruned network trains for the dense budget
    epochs, lr = (recipe.train.epochs, recipe.train.lr) if at_init else (recipe.finetune.epochs, recipe.finetune.lr)
    training.seed_everything(recipe.seed, recipe.train.threads)
    if recipe.schedule.kind == "gradual":
        steps = epochs * training.steps_per_epoch(bundle.train, recipe.data.batch_size)
        events = schedules.pruning_events(steps, recipe.schedule.steps) if steps else []
        callbacks.append(schedules.GradualPruning(lambda m, t: method.prune(m, t, hp, ctx), target.value, events))
    else:
        out = method.prune(model, target, hp, ctx)
        if out:
            removed = [*removed, out]
    if rewind_state is not None:
        model = store.rewind(model, dense.model, bundle.input_shape, removed, rewind_state)
    finetune(model, recipe, bundle, epochs, lr, seed=recipe.seed * 100 + level, callbacks=callbacks,
             desc=f"{recipe.method} {target.label()}")  # fmt: skip
    if recipe.schedule.kind == "gradual":
        method.prune(model, Sparsity(target.value), hp, ctx)  # a no-op unless the schedule stopped short
    return model, removed
