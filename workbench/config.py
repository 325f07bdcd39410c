"""Frozen, validated configuration built from the flat parameters a notebook receives.

Every check runs when a config is built, so a bad value fails in one line before any training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A bad parameter; the message names the value and the accepted ones."""


def _choice(what: str, value: Any, known: list[str] | tuple[str, ...]) -> None:
    if value not in known:
        raise ConfigError(f"unknown {what} {value!r}; known: {', '.join(known)}")


def _at_least(what: str, value: Any, low: float, kind: type = int) -> None:
    accepted = (int, float) if kind is float else kind
    if not isinstance(value, accepted) or isinstance(value, bool) or value < low:
        noun = "a number" if kind is float else "an integer"
        raise ConfigError(f"{what} must be {noun} >= {low:g}, got {value!r}")


def _fraction(what: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{what} must be a number in [0, 1), got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"  # digits, mnist1d (embedded) or cifar10, cifar100, mnist, fashion-mnist (data root)
    batch_size: int = 64  # training batch size
    split_seed: int = 0  # seed of the train/test split of the embedded data sets (fixed across run seeds)

    def __post_init__(self):
        from workbench.data import DATASETS

        _choice("dataset", self.dataset, DATASETS.names())
        _at_least("batch_size", self.batch_size, 1)
        _at_least("split_seed", self.split_seed, 0)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "small_cnn"  # a name from workbench.models.MODELS

    def __post_init__(self):
        from workbench.models import MODELS

        _choice("model", self.name, MODELS.names())


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15  # epochs of dense training
    lr: float = 0.05  # SGD learning rate (cosine-annealed to 0)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    threads: int = 1  # torch threads while training: results are reproducible for a fixed count

    def __post_init__(self):
        _at_least("epochs", self.epochs, 0)
        _at_least("lr", self.lr, 0.0, float)
        _fraction("momentum", self.momentum)
        _at_least("weight_decay", self.weight_decay, 0.0, float)
        _at_least("threads", self.threads, 1)


@dataclass(frozen=True)
class PruneConfig:
    method: str = "global_magnitude"  # a name from workbench.pruning.METHODS
    sparsity: float = 0.5  # fraction of prunable weights set to zero, in [0, 1)
    finetune_epochs: int = 2  # epochs of fine-tuning with the mask applied
    finetune_lr: float = 0.01
    pruning_steps: int = 4  # for gradual methods: how many times the mask is tightened
    flops_reduction: float = 2.0  # structured: dense FLOPs / pruned FLOPs to reach (>= 1)
    allocation: str = "uniform"  # structured: same channel fraction per group, or one global ranking
    iterative_steps: int = 1  # structured: reach the target in this many prune + fine-tune rounds
    round_to: int = 8  # structured: keep channel counts multiples of this (0: no rounding); CPUs prefer 8
    calibration_size: int = 128  # data-dependent criteria: training images they may look at

    def __post_init__(self):
        from workbench.pruning import METHODS
        from workbench.pruning.structural import ALLOCATIONS

        _choice("method", self.method, METHODS.names())
        _fraction("sparsity", self.sparsity)
        _at_least("finetune_epochs", self.finetune_epochs, 0)
        _at_least("finetune_lr", self.finetune_lr, 0.0, float)
        _at_least("pruning_steps", self.pruning_steps, 1)
        _at_least("flops_reduction", self.flops_reduction, 1.0, float)
        _choice("allocation", self.allocation, ALLOCATIONS)
        _at_least("iterative_steps", self.iterative_steps, 1)
        _at_least("round_to", self.round_to, 0)
        _at_least("calibration_size", self.calibration_size, 1)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    seed: int = 0

    def __post_init__(self):
        _at_least("seed", self.seed, 0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def dense_key(self) -> str:
        """Hash of everything that decides the dense baseline (data, model, training, seed)."""
        return config_hash({"data": self.data, "model": self.model, "train": self.train, "seed": self.seed})


def config_hash(obj: Any) -> str:
    """Stable short hash of a (nested) config."""
    payload = json.dumps(_plain(obj), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "prune": PruneConfig}


def flat_names() -> list[str]:
    """Every flat parameter name accepted by from_flat."""
    names = {"seed", "model"}
    for section, cls in _SECTIONS.items():
        names.update(f.name for f in dataclasses.fields(cls) if not (section == "model" and f.name == "name"))
    return sorted(names)


def from_flat(**params: Any) -> RunConfig:
    """Build a RunConfig from flat names such as dataset=, model=, epochs=, method=, sparsity=, seed=."""
    unknown = sorted(set(params) - set(flat_names()))
    if unknown:
        raise ConfigError(f"unknown parameter {unknown[0]!r}; known: {', '.join(flat_names())}")
    parts: dict[str, dict[str, Any]] = {s: {} for s in _SECTIONS}
    seed = params.pop("seed", 0)
    if "model" in params:
        parts["model"]["name"] = params.pop("model")
    for name, value in params.items():
        section = next(s for s, cls in _SECTIONS.items() if name in {f.name for f in dataclasses.fields(cls)})
        parts[section][name] = value
    return RunConfig(**{s: cls(**parts[s]) for s, cls in _SECTIONS.items()}, seed=seed)
