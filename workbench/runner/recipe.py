"""A Recipe: everything that decides one pruning run, frozen and validated before anything trains.

`recipe(...)` builds one from flat values (the names a notebook's parameters cell uses); `Recipe.run_id(role, level)`
and `Recipe.dense_key()` hash only non-default fields, so adding a field with a default renames nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from workbench import checks
from workbench.config import DataConfig, FinetuneConfig, ModelConfig, TrainConfig, nondefault, plain, stable_hash
from workbench.data import DATASETS
from workbench.hparams import Hparams
from workbench.methods.base import METHODS, SCHEDULES, Method
from workbench.models import MODELS
from workbench.runner.schedules import level_target
from workbench.targets import Sparsity, Target, from_dict, make_target

PRUNE_AT = ("trained", "init")
REWIND = ("weights", "lr")
CONTROLS = ("masked_twin", "random_reinit", "random_mask", "scratch", "inverted", "instability")
"""Control runs attached to a main run (at every level of an iterative schedule): the unstructured twin at equal size
(structured methods), the pruned model re-initialised at random then retrained, a random mask with the same per-layer
sparsity (mask methods), the pruned architecture trained from scratch for the dense budget, the method's scores
inverted (methods that rank by a score), and a second copy trained from the rewind point with another data order,
for the error barrier between the two (instability analysis)."""


@dataclass(frozen=True)
class Schedule:
    kind: str = "one-shot"  # one-shot, gradual (Zhu & Gupta cubic, during fine-tuning) or iterative (levels)
    steps: int = 4  # gradual: how many times the mask is tightened; iterative: how many prune + retrain levels
    rewind_step: int | None = None  # None: fine-tune the pruned weights; k: retrain from dense step k (0 = init)
    prune_at: str = "trained"  # trained: prune the trained dense model; init: prune at initialisation, then train
    rewind: str = "weights"  # with rewind_step k: weights (weights and LR schedule back to step k) or lr (LR only)

    def __post_init__(self):
        checks.choice("schedule", self.kind, SCHEDULES)
        checks.integer("pruning_steps", self.steps, 1)
        checks.choice("prune_at", self.prune_at, PRUNE_AT)
        checks.choice("rewind", self.rewind, REWIND)
        if self.rewind != "weights" and self.rewind_step is None:
            raise checks.ConfigError(f"rewind={self.rewind!r} needs rewind_step (the step whose learning rate to use)")
        if self.prune_at == "init" and (self.kind != "one-shot" or self.rewind_step is not None):
            raise checks.ConfigError("prune_at='init' runs one-shot without rewind_step (training follows the pruning)")
        if self.rewind_step is not None:
            checks.integer("rewind_step", self.rewind_step, 0)
            if self.kind == "gradual":
                raise checks.ConfigError("rewind_step cannot be used with the gradual schedule; use one-shot/iterative")

    @property
    def levels(self) -> int:
        return self.steps if self.kind == "iterative" else 1


@dataclass(frozen=True)
class Latency:
    batch_size: int = 64  # batch size of the latency measurement
    threads: int = 1  # CPU threads of the latency measurement

    def __post_init__(self):
        checks.integer("latency_batch_size", self.batch_size, 1)
        checks.integer("latency_threads", self.threads, 1)


@dataclass(frozen=True)
class Recipe:
    """One run's configuration: method and hyperparameters, target, data, model, training, schedule, controls."""

    method: str
    target: Target
    hparams: Hparams
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    schedule: Schedule = field(default_factory=Schedule)
    controls: tuple[str, ...] = ()
    calibration_size: int = 128  # training images (with labels) that data-dependent methods may look at
    latency: Latency | None = None  # measure latency against the dense model (None: not measured)
    seed: int = 0

    def __post_init__(self):
        method = METHODS.get(self.method)
        method.check_target(self.target)
        if type(self.hparams) is not method.Hparams:
            wanted, got = method.Hparams.__name__, type(self.hparams).__name__
            raise checks.ConfigError(f"hyperparameters of {self.method!r} must be {wanted}, got {got}")
        checks.choice("dataset", self.data.dataset, DATASETS.names())
        checks.choice("model", self.model.name, MODELS.names())
        for control in self.controls:
            checks.choice("control", control, CONTROLS)
        if "masked_twin" in self.controls and not method.structural:
            raise checks.ConfigError(f"control 'masked_twin' needs a structured method; {self.method!r} masks weights")
        if "random_mask" in self.controls and method.structural:
            raise checks.ConfigError(f"control 'random_mask' needs a mask method; {self.method!r} removes channels")
        if "inverted" in self.controls and not method.invertible:
            known = ", ".join(METHODS.names(invertible=True))
            raise checks.ConfigError(f"control 'inverted' needs a method ranking weights by a score; accepted: {known}")
        if "instability" in self.controls and (self.schedule.rewind_step is None or self.schedule.rewind != "weights"):
            raise checks.ConfigError(
                "control 'instability' trains a second copy from the rewind point: it needs rewind_step "
                "(with rewind='weights')"
            )
        if self.schedule.kind == "gradual" and not isinstance(self.target, Sparsity):
            raise checks.ConfigError(f"the gradual schedule takes a sparsity target, got {self.target.kind}")
        if self.schedule.levels > 1:
            level_target(self.target, 1, self.schedule.levels)  # a target that cannot be split fails here
        if method.schedule and self.schedule.kind != method.schedule:
            raise checks.ConfigError(
                f"method {self.method!r} runs on the {method.schedule} schedule, got schedule={self.schedule.kind!r}"
            )
        checks.integer("calibration_size", self.calibration_size, 0)
        if method.needs_data and self.calibration_size == 0:
            raise checks.ConfigError(f"method {self.method!r} needs calibration data; calibration_size must be >= 1")
        checks.integer("seed", self.seed, 0)

    @property
    def method_obj(self) -> Method:
        return METHODS.get(self.method)

    @property
    def family(self) -> str:
        return METHODS.info(self.method)["family"]

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """The recipe a record's `recipe` field describes (inverse of to_dict)."""
        method = METHODS.get(data["method"])
        sections = {name: SECTIONS[name](**data[name]) for name in SECTIONS if name != "latency"}
        return cls(
            method=data["method"], target=from_dict(data["target"]), hparams=method.hparams(**data["hparams"]),
            controls=tuple(data.get("controls", ())), calibration_size=data.get("calibration_size", 128),
            latency=Latency(**data["latency"]) if data.get("latency") else None, seed=data.get("seed", 0), **sections,
        )  # fmt: skip

    def run_id(self, role: str = "main", level: int | None = None) -> str:
        """Hash of the non-default configuration, the role and the level: the name of the run's record.

        The list of controls is left out, so asking for controls later reuses the main run instead of redoing it.
        """
        return stable_hash({"recipe": nondefault(dataclasses.replace(self, controls=())), "role": role, "level": level})

    def dense_key(self) -> str:
        """Hash of what decides the dense model: data, model, training, seed, and the method if it trains it."""
        parts = {"data": nondefault(self.data), "model": nondefault(self.model), "train": nondefault(self.train)}
        parts["seed"] = self.seed
        if self.method_obj.shapes_dense_training():
            parts["method"] = {"name": self.method, "hparams": nondefault(self.hparams)}
        return stable_hash(parts)


FLAT_NAMES = {
    # flat name: (section, field)
    "dataset": ("data", "dataset"), "batch_size": ("data", "batch_size"), "split_seed": ("data", "split_seed"),
    "val_fraction": ("data", "val_fraction"), "model": ("model", "name"),
    "epochs": ("train", "epochs"), "lr": ("train", "lr"), "momentum": ("train", "momentum"),
    "weight_decay": ("train", "weight_decay"), "threads": ("train", "threads"),
    "finetune_epochs": ("finetune", "epochs"), "finetune_lr": ("finetune", "lr"),
    "schedule": ("schedule", "kind"), "pruning_steps": ("schedule", "steps"),
    "rewind_step": ("schedule", "rewind_step"), "prune_at": ("schedule", "prune_at"), "rewind": ("schedule", "rewind"),
    "latency_batch_size": ("latency", "batch_size"), "latency_threads": ("latency", "threads"),
}  # fmt: skip
TOP_NAMES = ("controls", "calibration_size", "measure_latency")
SECTIONS = {
    "data": DataConfig, "model": ModelConfig, "train": TrainConfig, "finetune": FinetuneConfig,
    "schedule": Schedule, "latency": Latency,
}  # fmt: skip


def flat_names() -> list[str]:
    """Every flat parameter name `recipe` accepts besides method, target, hparams and seed."""
    return sorted([*FLAT_NAMES, *TOP_NAMES])


def recipe(
    method: str,
    target: Target | tuple[str, float],
    seed: int = 0,
    hparams: dict[str, Any] | Hparams | None = None,
    **params: Any,
) -> Recipe:
    """A validated Recipe from flat values, e.g. recipe("lamp", ("sparsity", 0.9), epochs=5, controls=["random_mask"]).

    `measure_latency=True` measures latency (at latency_batch_size, latency_threads). A method that fixes its schedule
    (gradual_magnitude) gets it without asking.
    """
    unknown = sorted(set(params) - set(flat_names()))
    if unknown:
        raise checks.ConfigError(f"unknown parameter {unknown[0]!r}; known: {', '.join(flat_names())}")
    method_obj = METHODS.get(method)
    if not isinstance(target, Target):
        target = make_target(*target)
    if not isinstance(hparams, Hparams):
        hparams = method_obj.hparams(**(hparams or {}))
    parts: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for name, value in params.items():
        if name in FLAT_NAMES:
            section, key = FLAT_NAMES[name]
            parts[section][key] = value
    if method_obj.schedule and "kind" not in parts["schedule"]:
        parts["schedule"]["kind"] = method_obj.schedule
    built = {s: SECTIONS[s](**v) for s, v in parts.items() if s != "latency"}
    measure = params.get("measure_latency", False) or bool(parts["latency"])
    controls = params.get("controls", ())
    if isinstance(controls, dict):  # {method: [controls]}: controls for some methods of a grid only
        controls = controls.get(method, ())
    if isinstance(controls, str):
        raise checks.ConfigError(f"controls must be a list of names, got {controls!r}; known: {', '.join(CONTROLS)}")
    return Recipe(
        method=method,
        target=target,
        hparams=hparams,
        controls=tuple(controls),
        calibration_size=params.get("calibration_size", 128),
        latency=Latency(**parts["latency"]) if measure else None,
        seed=seed,
        **built,
    )
