"""Control runs, each attached to a main run (at every level of an iterative schedule) as a record of its own.

Role = the control's name. "Retrained like the main run" means the same retraining as the level's main run: the
fine-tuning budget, the rest of the dense schedule from the rewind step, or (pruning at initialisation) the dense
budget.

- masked_twin (structured methods): global magnitude masks on the dense weights leaving as many conv/linear weights
  as the pruned model has, fine-tuned for the main run's fine-tuning budget up to this level. Equal size, no speed.
- random_reinit: the pruned architecture and mask on a fresh initialisation, retrained like the main run.
- random_mask (mask methods): a random mask with the main mask's per-layer counts on the weights the main run's
  retraining starts from (the rewind checkpoint, the initialisation, or the dense weights), retrained like it.
- scratch: the pruned architecture and mask from a fresh initialisation, trained for the dense budget (Liu et al.).
- inverted (methods that keep the highest scores): the level pruned again with the scores inverted (the lowest kept),
  retrained like the main run (the sanity check of Frankle et al., 2021).
- instability: a second copy of the main run's network from its rewind point, retrained with another data order;
  the record holds the test error along the line between the two copies and its barrier (Frankle et al., 2020).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils import prune

from workbench import metrics
from workbench.pruning import interpolation
from workbench.pruning.masks import masked_like
from workbench.runner import store
from workbench.runner.recipe import Recipe

REINIT_SEED_OFFSET = 10_000  # control initialisations draw from seed + this, never the main run's seed
SECOND_COPY_SEED_OFFSET = 20_000  # the data order of the instability analysis's second copy


@dataclass
class Level:
    """What a control of one level may use: the level's trained main model and how the main run was made."""

    recipe: Recipe
    model: nn.Module  # the main run's model after retraining
    before: nn.Module | None  # the model the level pruned (kept only when a control re-prunes it)
    removed: list
    dense: Any  # store.DenseRun
    bundle: Any
    start: nn.Module  # the weights the main run's retraining starts from (dense-shaped)
    level: int
    retrain: Callable[[nn.Module, int], None]  # retrain(model, seed) as the main run was retrained
    train: Callable[[nn.Module, int, float, int], None]  # train(model, epochs, lr, seed)
    reprune: Callable[[nn.Module], nn.Module]  # the level's pruning of a copy of `before`, scores inverted, retrained


def masked_twin(s: Level, seed: int):
    twin = masked_like(s.dense.model, s.model)
    s.train(twin, s.recipe.finetune.epochs * s.level, s.recipe.finetune.lr, seed)
    return twin, {}


def random_reinit(s: Level, seed: int):
    model = reinitialised(s.recipe, s.model, s.removed, s.bundle)
    s.retrain(model, seed)
    return model, {}


def random_mask(s: Level, seed: int):
    model = random_mask_like(s.model, s.start)
    s.retrain(model, seed)
    return model, {}


def scratch(s: Level, seed: int):
    model = reinitialised(s.recipe, s.model, s.removed, s.bundle)
    s.train(model, s.recipe.train.epochs, s.recipe.train.lr, seed)
    return model, {}


def inverted(s: Level, seed: int):
    return s.reprune(copy.deepcopy(s.before)), {}


def instability(s: Level, seed: int):
    second = store.rebuild(s.dense.model, s.bundle.input_shape, s.removed, store.masks_of(s.model),
                           s.start.state_dict())  # fmt: skip
    s.retrain(second, seed + SECOND_COPY_SEED_OFFSET)
    errors = interpolation.interpolation_errors(s.model, second, s.bundle.test, s.bundle.train_plain)
    alphas = list(interpolation.DEFAULT_ALPHAS)
    return second, {"barrier": interpolation.error_barrier(errors), "alphas": alphas, "interpolation_error": errors}


BUILDERS = {
    "masked_twin": masked_twin, "random_reinit": random_reinit, "random_mask": random_mask, "scratch": scratch,
    "inverted": inverted, "instability": instability,
}  # fmt: skip
"""control name -> run(level, seed) -> (trained model, extra metrics for its record)."""


def reinitialised(recipe: Recipe, model: nn.Module, removed: list, bundle) -> nn.Module:
    """`model`'s architecture and masks on a fresh initialisation drawn from seed + REINIT_SEED_OFFSET."""
    fresh = store.fresh_model(recipe, bundle, seed=recipe.seed + REINIT_SEED_OFFSET)
    return store.rebuild(fresh, bundle.input_shape, removed, store.masks_of(model))


def random_mask_like(model: nn.Module, start: nn.Module) -> nn.Module:
    """A copy of `start` with uniformly random masks leaving each conv/linear layer as many nonzeros as `model`'s."""
    twin = copy.deepcopy(start)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, layer in metrics.prunable_layers(twin):
            zeros = int((modules[name].weight == 0).sum())
            prune.random_unstructured(layer, "weight", amount=zeros)
    return twin
