"""Run one recipe: dense run -> pruning schedule -> fine-tune -> controls -> measure -> one record per run.

Each run's record is written atomically the moment it finishes, and the model of every finished level is kept, so
a recipe interrupted at any point continues where it stopped and recomputes nothing that finished.
"""

from __future__ import annotations

import copy
import functools

import torch.nn as nn

from workbench import checks, models, training
from workbench.methods.base import INVERT_SCORES, SEARCH_REPORT, Context
from workbench.metrics import prunable_layers
from workbench.provenance import provenance
from workbench.pruning.masks import refresh_masked_weights
from workbench.records import RunRecord, read_record, write_record
from workbench.runner import controls, measure, schedules, store
from workbench.runner.recipe import Recipe
from workbench.targets import Sparsity, Target


def planned_runs(recipe: Recipe) -> list[tuple[str, int | None, str]]:
    """(role, level, run id) of every run the recipe makes, in order: each level's main run, then its controls.

    A one-level schedule has level None (so its run ids do not change with the schedule's name).
    """
    levels = recipe.schedule.levels
    runs = []
    for level in range(1, levels + 1):
        tag = level if levels > 1 else None
        runs += [("main", tag)] + [(name, tag) for name in recipe.controls]
    return [(role, level, recipe.run_id(role, level)) for role, level in runs]


def check_data(recipes: list[Recipe]) -> None:
    """One-line errors, before anything trains: calibration batches larger than the training split, rewind steps
    past the end of dense training, sparsity targets that would leave less than one weight per layer, a model the
    method cannot work on (`Method.check_model`, e.g. slimming without batch norm), a budget no candidate meets
    (`Method.check_budget`, searchers)."""
    for recipe in recipes:
        bundle = store.bundle_of(recipe)
        if recipe.method_obj.needs_data:
            size = len(bundle.train)
            if recipe.calibration_size > size:
                raise checks.ConfigError(
                    f"calibration_size {recipe.calibration_size} is larger than the training split of "
                    f"{recipe.data.dataset} ({size} examples); accepted: 1 to {size}"
                )
        total, k = store.dense_steps(recipe, bundle), recipe.schedule.rewind_step
        if k is not None and k > total:
            raise checks.ConfigError(
                f"rewind_step {k} is past the end of dense training ({total} steps: {recipe.train.epochs} epochs of "
                f"{total // max(recipe.train.epochs, 1)}); accepted: 0 to {total}"
            )
        if isinstance(recipe.target, Sparsity) and not recipe.method_obj.structural:
            check_weights_left(recipe, bundle)
        model = built(recipe.model.name, bundle.num_classes, bundle.input_shape)
        recipe.method_obj.check_model(model, recipe.hparams)
        recipe.method_obj.check_budget(model, recipe.target, recipe.hparams, bundle.input_shape)


def check_weights_left(recipe: Recipe, bundle) -> None:
    """A one-line error if the recipe's sparsity leaves fewer weights than the model has prunable layers."""
    layers, total = layer_counts(recipe.model.name, bundle.num_classes, bundle.input_shape)
    left = round((1 - recipe.target.value) * total)
    if left < layers:
        most = 1 - layers / total
        levels = recipe.schedule.levels
        hint = f" ({levels} levels)" if levels > 1 else ""
        raise checks.ConfigError(
            f"sparsity {recipe.target.value:g}{hint} leaves {left} of the {total} prunable weights of "
            f"{recipe.model.name}, fewer than one per layer ({layers} layers); accepted: at most {most:.6f}"
        )


@functools.lru_cache(maxsize=8)
def built(model: str, num_classes: int, input_shape: tuple[int, ...]):
    """A freshly built `model`, shared by the checks (which only read it)."""
    return models.build(model, num_classes, input_shape)


def layer_counts(model: str, num_classes: int, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(prunable layers, prunable weights) of a freshly built `model`."""
    layers = prunable_layers(built(model, num_classes, input_shape))
    return len(layers), sum(m.weight.numel() for _, m in layers)


def finished(recipe: Recipe, notebook: str) -> bool:
    """True if every run of `recipe` has its record."""
    return all(read_record(notebook, run_id) is not None for _, _, run_id in planned_runs(recipe))


def finetune(model: nn.Module, recipe: Recipe, bundle, epochs: int, lr: float, seed: int, callbacks=(), desc="",
             steps: int | None = None):  # fmt: skip
    """Train `model` in place for `epochs` (or exactly `steps` SGD steps) at `lr` (cosine to 0), with the recipe's
    SGD settings."""
    if steps is None:
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


def retrain(model: nn.Module, recipe: Recipe, bundle, seed: int, callbacks=(), desc=""):
    """Train a pruned `model` the way the recipe retrains after pruning (Renda et al.'s three options and PaI):

    - pruned at initialisation: the dense budget (`epochs` at `lr`);
    - no rewind step: fine-tuning, `finetune_epochs` at `finetune_lr`;
    - rewind step k: the rest of the dense run's schedule, steps k..T at the dense learning rate of each step (with
      rewind="weights" the caller has reset the weights to step k first: lottery-ticket rewinding; with rewind="lr"
      they stay: learning-rate rewinding). Momentum starts empty.
    """
    schedule, t = recipe.schedule, recipe.train
    if schedule.prune_at == "init":
        return finetune(model, recipe, bundle, t.epochs, t.lr, seed, callbacks, desc)
    if schedule.rewind_step is None:
        return finetune(model, recipe, bundle, recipe.finetune.epochs, recipe.finetune.lr, seed, callbacks, desc)
    total = store.dense_steps(recipe, bundle)
    if schedule.rewind_step >= total:
        return
    training.seed_everything(seed, t.threads)
    training.train(
        model, bundle.train, batch_size=recipe.data.batch_size, lr=t.lr, momentum=t.momentum,
        weight_decay=t.weight_decay, total_steps=total, start_step=schedule.rewind_step, seed=seed,
        callbacks=callbacks, desc=desc,
    )  # fmt: skip
    refresh_masked_weights(model)


def run_seed(recipe: Recipe, role: str, level: int | None, index: int = 0) -> int:
    """The training seed of one run: a main run seed*100 + level; a control seed*100 + 50 + its index in the
    recipe's controls, plus 1000 * level on iterative schedules (one-level seeds are those of earlier records)."""
    at = level or 1
    if role == "main":
        return recipe.seed * 100 + at
    return recipe.seed * 100 + 50 + index + (1000 * at if level else 0)


def run_recipe(recipe: Recipe, notebook: str, made_by: dict | None = None, models: bool = False) -> list[RunRecord]:
    """Every run of `recipe` (levels and their controls) as records, computing only those not stored yet.

    `models=True` also rebuilds the model of every level whose record exists but whose model file does not (a fresh
    clone has the records, not the run cache): the same steps, bit for bit; the records are left as they are.
    """
    planned = planned_runs(recipe)
    stored = {run_id: read_record(notebook, run_id) for _, _, run_id in planned}
    missing = models and any(not store.run_file(r).exists() for role, _, r in planned if role == "main")
    if all(stored.values()) and not missing:
        return [stored[run_id] for _, _, run_id in planned]
    made_by = made_by or provenance()
    bundle = store.bundle_of(recipe)
    schedule = recipe.schedule
    rewinds = () if schedule.rewind_step is None else (schedule.rewind_step,)
    dense = store.train_dense(recipe, bundle, save_steps=rewinds)
    at_init = schedule.prune_at == "init"
    rewind_state = None
    if schedule.rewind_step is not None and schedule.rewind == "weights":
        rewind_state = dense.checkpoint(schedule.rewind_step).model_state
    start_state = dense.checkpoint(0).model_state if at_init else rewind_state
    ctx = store.context(recipe, bundle, dense.reference)
    ctx.train = lambda model, epochs, lr, callbacks=(), steps=None: finetune(
        model, recipe, bundle, epochs, lr, recipe.seed * 100 + 99, callbacks, "method training", steps
    )  # for methods that train while pruning (growing regularisation, NetAdapt's short-term fine-tuning)
    hp, levels, shape = recipe.hparams, schedule.levels, bundle.input_shape

    def record(model, role, level, target: Target, parent, extra=None) -> RunRecord:
        scalar, layers = measure.measure(model, bundle, dense.reference, dense.model, recipe.latency)
        scalar.update(recipe.method_obj.metrics(model, hp))
        rec = RunRecord(
            run_id=recipe.run_id(role, level), notebook=notebook, family=recipe.family, method=recipe.method,
            hparams=hp.as_dict(), target=target.as_dict(), role=role, seed=recipe.seed, model=recipe.model.name,
            dataset=recipe.data.dataset, recipe=recipe.to_dict(), metrics={**scalar, **(extra or {})},
            parent=parent, level=level, levels=levels if level else None, layers=layers, provenance=made_by,
        )  # fmt: skip
        write_record(rec)
        return rec

    start = dense.model if start_state is None else store.rebuild(dense.model, shape, [], {}, start_state)
    model = store.rebuild(dense.model, shape, [], {}, start_state if at_init else None)
    removed, parent, done = [], None, []
    keep_before = "inverted" in recipe.controls
    for at in range(1, levels + 1):
        tag = at if levels > 1 else None
        target = schedules.level_target(recipe.target, at, levels)
        main_id = recipe.run_id("main", tag)
        before, removed_before = (copy.deepcopy(model) if keep_before else None), removed
        if stored[main_id] is not None and store.run_file(main_id).exists():
            model, removed = store.restore_model(dense.model, store.run_file(main_id), shape)
        else:
            ctx.extra["run_id"] = main_id  # names the run's own state, e.g. a searcher's Optuna study
            model, removed = prune_level(model, removed, recipe, bundle, ctx, at, dense, rewind_state)
            report = ctx.extra.pop(SEARCH_REPORT, None)
            if stored[main_id] is None:
                stored[main_id] = record(model, "main", tag, target, parent, report)
            store.save_model(model, store.run_file(main_id), removed)
        done.append(stored[main_id])
        for index, role in enumerate(recipe.controls):
            run_id = recipe.run_id(role, tag)
            if stored[run_id] is None:
                seed = run_seed(recipe, role, tag, index)
                state = controls.Level(
                    recipe, model, before, removed, dense, bundle, start, at,
                    retrain=lambda m, sd: retrain(m, recipe, bundle, sd, desc="control"),
                    train=lambda m, e, lr, sd: finetune(m, recipe, bundle, e, lr, sd, desc="control"),
                    reprune=lambda m, lvl=at, prior=removed_before: prune_level(
                        m, prior, recipe, bundle, ctx, lvl, dense, rewind_state, invert=True)[0],
                )  # fmt: skip
                training.seed_everything(seed, recipe.train.threads)
                control, extra = controls.BUILDERS[role](state, seed)
                stored[run_id] = record(control, role, tag, target, main_id, extra)
            done.append(stored[run_id])
        ctx.extra["previous_channel_ratio"] = getattr(target, "value", 0.0)
        parent = main_id
    return done


def prune_level(model, removed, recipe: Recipe, bundle, ctx: Context, level: int, dense, rewind_state, invert=False):
    """Prune to the level's target (or gradually during fine-tuning), rewind if asked, retrain; (model, removed).

    `invert` asks an invertible method to keep its lowest scores instead (the `inverted` control).
    """
    method, hp = recipe.method_obj, recipe.hparams
    ctx.level, ctx.levels = level, recipe.schedule.levels
    target = schedules.level_target(recipe.target, level, recipe.schedule.levels)
    callbacks = list(method.finetune_callbacks(hp, ctx))
    training.seed_everything(recipe.seed, recipe.train.threads)
    if recipe.schedule.kind == "gradual":
        steps = recipe.finetune.epochs * training.steps_per_epoch(bundle.train, recipe.data.batch_size)
        events = schedules.pruning_events(steps, recipe.schedule.steps) if steps else []
        callbacks.append(schedules.GradualPruning(lambda m, t: method.prune(m, t, hp, ctx), target.value, events))
    else:
        ctx.extra[INVERT_SCORES] = invert
        try:
            out = method.prune(model, target, hp, ctx)
        finally:
            ctx.extra.pop(INVERT_SCORES)
        if out:
            removed = [*removed, out]
    if rewind_state is not None:
        model = store.rewind(model, dense.model, bundle.input_shape, removed, rewind_state)
    retrain(model, recipe, bundle, seed=recipe.seed * 100 + level, callbacks=callbacks,
            desc=f"{recipe.method} {target.label()}")  # fmt: skip
    if recipe.schedule.kind == "gradual":
        method.prune(model, Sparsity(target.value), hp, ctx)  # a no-op unless the schedule stopped short
    return model, removed
