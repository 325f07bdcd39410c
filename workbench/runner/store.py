"""Dense runs and their checkpoints, cached by key; pruned models saved and restored between levels.

A dense run keeps checkpoints at initialisation, at the end, and at any rewind step asked for later (trained again
from initialisation up to that step, which gives the same weights bit for bit). Files appear whole or not at all;
one lock per entry (`<key>.lock` beside its folder) lets one process train it while the others wait and then read it,
and an entry that cannot be read (a truncated `info.json` or `step-*.pt`) is removed with a warning and trained again.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import filelock
import torch
import torch.nn as nn
from torch.nn.utils import prune

from workbench import data as wdata
from workbench import models, paths, training
from workbench.gating.sites import gate_spec, regate
from workbench.methods.base import Context
from workbench.pruning.masks import refresh_masked_weights
from workbench.records import write_atomic
from workbench.runner import measure
from workbench.runner.recipe import Recipe


@lru_cache(maxsize=4)
def bundle_for(dataset: str, split_seed: int, val_fraction: float) -> wdata.DataBundle:
    """The data set, loaded once per process."""
    return wdata.load(dataset, split_seed, val_fraction=val_fraction)


def bundle_of(recipe: Recipe) -> wdata.DataBundle:
    d = recipe.data
    return bundle_for(d.dataset, d.split_seed, d.val_fraction)


def dense_steps(recipe: Recipe, bundle: wdata.DataBundle) -> int:
    """Optimizer steps of dense training."""
    return recipe.train.epochs * training.steps_per_epoch(bundle.train, recipe.data.batch_size)


def fresh_model(recipe: Recipe, bundle: wdata.DataBundle, seed: int | None = None) -> nn.Module:
    """A newly initialised model of the recipe (seeded by `seed`, default the run's), transformed by its method."""
    torch.manual_seed(recipe.seed if seed is None else seed)
    model = models.build(recipe.model.name, bundle.num_classes, bundle.input_shape)
    return recipe.method_obj.transform(model, recipe.hparams)


@dataclass
class DenseRun:
    """The trained dense model, its reference measurements and where its checkpoints are.

    `info` also holds `train_seconds` (wall time of dense training) and `traces` (what the method's training
    callbacks recorded, e.g. the quantiles of batch-norm scales every few steps under a regulariser).
    """

    model: nn.Module
    reference: dict
    folder: Path
    info: dict = field(default_factory=dict)

    def checkpoint(self, step: int) -> training.Checkpoint:
        return training.load_checkpoint(self.folder / f"step-{step}.pt")


def dense_folder(recipe: Recipe) -> Path:
    return paths.cache_dir() / "dense" / recipe.dense_key()


def context(recipe: Recipe, bundle: wdata.DataBundle, reference: dict) -> Context:
    """What the method may look at: shapes, the dense reference, the seed, labelled calibration data if needed."""
    method = recipe.method_obj
    calibration = validation = None
    if method.needs_data:
        calibration = wdata.calibration_batch(bundle, recipe.calibration_size, seed=recipe.seed)
    if method.needs_validation:
        validation = wdata.calibration_batch(bundle, len(bundle.val), seed=recipe.seed, split="val")
    per_epoch = training.steps_per_epoch(bundle.train, recipe.data.batch_size)
    extra = {"steps_per_epoch": per_epoch, "finetune_steps": recipe.finetune.epochs * per_epoch}
    return Context(bundle.input_shape, bundle.num_classes, reference, recipe.seed, calibration, validation, extra=extra)


def dense_callbacks(recipe: Recipe, bundle: wdata.DataBundle) -> list:
    """The method's callbacks of dense training (none for most methods)."""
    return recipe.method_obj.training_callbacks(recipe.hparams, context(recipe, bundle, reference={}))


class DamagedCacheWarning(UserWarning):
    """A cache entry that could not be read was removed and is being rebuilt."""


def entry_lock(folder: Path) -> filelock.FileLock:
    """The lock of one cache entry (re-entrant in a thread; other threads and processes wait for it)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(folder.with_name(f"{folder.name}.lock"), is_singleton=True)


def train_dense(recipe: Recipe, bundle: wdata.DataBundle, save_steps: tuple[int, ...] = ()) -> DenseRun:
    """The dense run of `recipe`, trained now unless cached; checkpoints at 0, the end and `save_steps`.

    Under the entry's lock: a damaged entry is removed (with a DamagedCacheWarning) and trained again.
    """
    folder = dense_folder(recipe)
    total = dense_steps(recipe, bundle)
    with entry_lock(folder):
        run = _load_dense(recipe, bundle, folder, total)
        if run is None:
            _train_entry(recipe, bundle, folder, total, save_steps)
            run = _load_dense(recipe, bundle, folder, total, rebuilt=True)
        for step in save_steps:
            ensure_checkpoint(run, recipe, bundle, step)
    return run


def _load_dense(recipe: Recipe, bundle, folder: Path, total: int, rebuilt: bool = False) -> DenseRun | None:
    """The cached dense run in `folder`, or None if there is none or it is damaged (then removed, with a warning)."""
    info_file = folder / "info.json"
    if not info_file.exists():
        return None
    try:
        info = json.loads(info_file.read_text())
        model = fresh_model(recipe, bundle)
        model.load_state_dict(training.load_checkpoint(folder / f"step-{total}.pt").model_state)
        return DenseRun(model, info["reference"], folder, info)
    except Exception as exc:  # noqa: BLE001  (any unreadable file: JSON, pickle, zip, missing key)
        if rebuilt:
            raise
        warnings.warn(f"dense cache entry {folder} is damaged ({_reason(exc)}); training it again", DamagedCacheWarning,
                      stacklevel=3)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _reason(exc: BaseException) -> str:
    """One line about why a cached file could not be read."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _train_entry(recipe: Recipe, bundle, folder: Path, total: int, save_steps: tuple[int, ...]) -> None:
    """Train the dense model and store its checkpoints, then `info.json` last (its presence marks a whole entry)."""
    training.seed_everything(recipe.seed, recipe.train.threads)
    model = fresh_model(recipe, bundle)
    t = recipe.train
    saves = {f"step-{s}": s for s in {0, total, *save_steps}}
    callbacks = dense_callbacks(recipe, bundle)
    started = time.perf_counter()
    if total:
        state = training.train(
            model, bundle.train, batch_size=recipe.data.batch_size, lr=t.lr, momentum=t.momentum,
            weight_decay=t.weight_decay, total_steps=total, seed=recipe.seed, save_at=saves,
            callbacks=callbacks, desc=f"dense seed {recipe.seed}",
        )  # fmt: skip
        for name, ckpt in state.checkpoints.items():
            training.save_checkpoint(folder / f"{name}.pt", ckpt)
    else:
        training.save_checkpoint(folder / "step-0.pt", training.Checkpoint("step-0", 0, model.state_dict(), None))
    info = {"key": recipe.dense_key(), "steps": total, "reference": measure.reference(model, bundle),
            "train_seconds": time.perf_counter() - started,
            "traces": {type(cb).__name__: cb.trace for cb in callbacks if getattr(cb, "trace", None)}}  # fmt: skip
    write_atomic(folder / "info.json", json.dumps(info, indent=1))


def ensure_checkpoint(run: DenseRun, recipe: Recipe, bundle: wdata.DataBundle, step: int) -> None:
    """Make sure the dense run has a readable checkpoint after `step` steps (trained again from step 0 if missing
    or damaged)."""
    path = run.folder / f"step-{step}.pt"
    total = dense_steps(recipe, bundle)
    with entry_lock(run.folder):
        if path.exists() and _readable_checkpoint(path):
            return
        if step > total:
            raise ValueError(f"rewind_step {step} is past the end of dense training ({total} steps)")
        training.seed_everything(recipe.seed, recipe.train.threads)
        model = fresh_model(recipe, bundle)
        model.load_state_dict(run.checkpoint(0).model_state)
        t = recipe.train
        state = training.train(
            model, bundle.train, batch_size=recipe.data.batch_size, lr=t.lr, momentum=t.momentum,
            weight_decay=t.weight_decay, total_steps=total, seed=recipe.seed, end_step=step,
            save_at={f"step-{step}": step}, callbacks=dense_callbacks(recipe, bundle), desc=f"dense to step {step}",
        )  # fmt: skip
        training.save_checkpoint(path, state.checkpoints[f"step-{step}"])


def _readable_checkpoint(path: Path) -> bool:
    """True if `path` loads as a checkpoint; a damaged one is removed with a warning (so it is trained again)."""
    try:
        training.load_checkpoint(path)
        return True
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"dense checkpoint {path} is damaged ({_reason(exc)}); training it again", DamagedCacheWarning,
                      stacklevel=3)  # fmt: skip
        path.unlink(missing_ok=True)
        return False


def damaged_entries() -> list[tuple[Path, str]]:
    """(path, reason) of every dense cache entry and kept run model that cannot be read (for `workbench doctor`)."""
    found = []
    for folder in sorted((paths.cache_dir() / "dense").glob("*")):
        if not folder.is_dir():
            continue
        try:
            json.loads((folder / "info.json").read_text())["reference"]
        except FileNotFoundError:
            continue  # being trained, or a kill left checkpoints without info: trained again when asked
        except Exception as exc:  # noqa: BLE001
            found.append((folder, f"info.json: {_reason(exc)}"))
            continue
        for ckpt in sorted(folder.glob("step-*.pt")):
            try:
                training.load_checkpoint(ckpt)
            except Exception as exc:  # noqa: BLE001
                found.append((folder, f"{ckpt.name}: {_reason(exc)}"))
                break
    for saved in sorted((paths.cache_dir() / "runs").glob("*.pt")):
        try:
            torch.load(saved, map_location="cpu", weights_only=True)["state"]
        except Exception as exc:  # noqa: BLE001
            found.append((saved, _reason(exc)))
    return found


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """{module name: weight mask} of every module pruned by torch.nn.utils.prune."""
    return {name: m.weight_mask.clone() for name, m in model.named_modules() if hasattr(m, "weight_mask")}


def rebuild(
    dense: nn.Module, input_shape, removed: list, masks: dict[str, torch.Tensor], state: dict | None = None
) -> nn.Module:
    """A copy of `dense` (optionally loaded with a dense-shaped `state`), with the channel removals replayed in
    order and the masks applied: the pruned architecture, carrying dense (or rewound) weights."""
    from workbench.pruning import structural

    model = copy.deepcopy(dense)
    if state is not None:
        model.load_state_dict(state)
    if removed:
        structural.make_traceable(model)
        for step in removed:
            structural.replay(model, input_shape, step)
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        prune.custom_from_mask(modules[name], "weight", mask)
    return model


def rewind(model: nn.Module, dense: nn.Module, input_shape, removed: list, state: dict) -> nn.Module:
    """`model`'s architecture and masks with the weights of the dense checkpoint `state` (lottery-ticket rewinding)."""
    return rebuild(dense, input_shape, removed, masks_of(model), state)


def save_model(model: nn.Module, path: Path, removed: list) -> None:
    """Save a pruned model: its state (masks included) and the channel removals that shaped it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    saved = {"state": model.state_dict(), "removed": removed, "masks": masks_of(model), "gates": gate_spec(model)}
    torch.save(saved, tmp)
    os.replace(tmp, path)


def restore_model(dense: nn.Module, path: Path, input_shape) -> tuple[nn.Module, list]:
    """The model saved by save_model, rebuilt from a copy of the dense model, and its removals."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = rebuild(dense, input_shape, saved["removed"], saved["masks"])
    if saved.get("gates"):
        regate(model, saved["gates"])
    model.load_state_dict(saved["state"])
    refresh_masked_weights(model)  # `weight` of a masked layer is otherwise stale until the next forward pass
    return model, saved["removed"]


def run_file(run_id: str) -> Path:
    """Where the model of a finished level is kept, so a resumed sweep continues from it."""
    return paths.cache_dir() / "runs" / f"{run_id}.pt"
