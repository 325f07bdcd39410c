"""Control runs, each attached to its main run as a record of its own (role = the control's name).

- masked_twin (structured methods): global magnitude masks on the dense weights leaving as many conv/linear weights
  as the pruned model has, fine-tuned for the main run's whole fine-tuning budget. Equal size, no speed.
- random_reinit: the pruned architecture and mask with freshly initialised weights, trained for `finetune_epochs`.
- random_mask (mask methods): a random mask with the main mask's per-layer sparsity on the weights the main run
  started from (the rewind checkpoint when rewinding, else the dense weights), trained for `finetune_epochs`.
- scratch: the pruned architecture and mask from a fresh initialisation, trained for the dense budget (`epochs`).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.nn.utils import prune

from workbench import metrics
from workbench.pruning.masks import masked_like
from workbench.runner import store
from workbench.runner.recipe import Recipe

REINIT_SEED_OFFSET = 10_000  # control initialisations draw from seed + this, never the main run's seed


def masked_twin(recipe, model, removed, dense, bundle, start):
    return masked_like(dense.model, model), recipe.finetune.epochs * recipe.schedule.levels, recipe.finetune.lr


def random_reinit(recipe, model, removed, dense, bundle, start):
    return reinitialised(recipe, model, removed, bundle), recipe.finetune.epochs, recipe.finetune.lr


def random_mask(recipe, model, removed, dense, bundle, start):
    return random_mask_like(model, start), recipe.finetune.epochs, recipe.finetune.lr


def scratch(recipe, model, removed, dense, bundle, start):
    return reinitialised(recipe, model, removed, bundle), recipe.train.epochs, recipe.train.lr


BUILDERS = {"masked_twin": masked_twin, "random_reinit": random_reinit, "random_mask": random_mask, "scratch": scratch}
"""control name -> builder(recipe, model, removed, dense, bundle, start) -> (untrained model, epochs, lr)."""


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
