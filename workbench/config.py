"""Frozen, validated configuration of data, model and training; imports nothing heavy (no torch, no methods).

Each field's comment is its help text. Names of data sets and models are checked against their registries
when a recipe is built (`workbench.runner.recipe`), which may import torch; this module only checks types and
ranges, so a bad value fails in one line before any training.

Run identities hash only the fields that differ from their defaults (`nondefault`), as open_lth does: adding a
field with a default later renames no stored run and invalidates no cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from workbench import checks
from workbench.checks import ConfigError

__all__ = ["ConfigError", "DataConfig", "ModelConfig", "TrainConfig", "FinetuneConfig", "stable_hash", "nondefault"]


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"  # digits, mnist1d (embedded) or cifar10, cifar100, mnist, fashion-mnist (data root)
    batch_size: int = 64  # training batch size
    split_seed: int = 0  # seed of the train/validation/test split of the embedded data sets
    val_fraction: float = 0.1  # share of the training data held out for validation (selection, never training)

    def __post_init__(self):
        checks.integer("batch_size", self.batch_size, 1)
        checks.integer("split_seed", self.split_seed, 0)
        checks.number("val_fraction", self.val_fraction, 0.0, 0.5, open_high=True)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "small_cnn"  # a name from workbench.models.MODELS


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15  # epochs of dense training
    lr: float = 0.05  # SGD learning rate at step 0, cosine-annealed to 0 over all steps
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 5e-4  # L2 weight decay
    threads: int = 1  # torch threads while training: results are reproducible for a fixed count

    def __post_init__(self):
        checks.integer("epochs", self.epochs, 0)
        checks.number("lr", self.lr, 0.0)
        checks.fraction("momentum", self.momentum)
        checks.number("weight_decay", self.weight_decay, 0.0)
        checks.integer("threads", self.threads, 1)


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 2  # epochs of fine-tuning (or retraining) after each pruning step
    lr: float = 0.01  # learning rate, cosine-annealed to 0 over each fine-tuning phase

    def __post_init__(self):
        checks.integer("finetune_epochs", self.epochs, 0)
        checks.number("finetune_lr", self.lr, 0.0)


def plain(obj: Any) -> Any:
    """Dataclasses, dicts, lists and tuples as plain JSON-able values (dataclasses become dicts)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        kind = getattr(obj, "kind", None)  # typed targets carry their kind as a class attribute
        return {"kind": kind, **out} if isinstance(kind, str) and kind else out
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def nondefault(obj: Any) -> Any:
    """The fields of a (nested) dataclass that differ from their defaults, as plain values.

    Fields without a default are always kept. Nested dataclasses recurse and vanish when fully default, unless the
    field's default is None: there a dataclass at its defaults is kept as {} (present, e.g. latency measured at the
    default settings, is not the same run as absent).
    """
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
        return plain(obj)
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        if f.default_factory is not dataclasses.MISSING and value == f.default_factory():
            continue
        sub = nondefault(value)
        if sub == {} and dataclasses.is_dataclass(value) and f.default is not None:
            continue
        out[f.name] = sub
    kind = getattr(obj, "kind", None)
    return {"kind": kind, **out} if isinstance(kind, str) and kind else out


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short, stable hash of plain values (sorted JSON)."""
    payload = json.dumps(plain(obj), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]
