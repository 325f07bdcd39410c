"""The method contract every pruning family implements, and the one registry of methods.

A method is a class with typed info (name, family, granularity, accepted target kinds, whether it needs data, the
bib key of its paper) and a frozen `Hparams` dataclass. The pipeline calls, in order:

    model = method.transform(model, hp)                    # before dense training (e.g. add gates); default: as is
    train(..., callbacks=method.training_callbacks(hp, ctx))   # dense training (e.g. a sparsity regulariser)
    method.prune(model, target, hp, ctx)                   # in place: masks, removed channels, merged filters
    train(..., callbacks=method.finetune_callbacks(hp, ctx))   # fine-tuning (e.g. keep a regulariser on)

One signature for every method; the pipeline never asks which method it runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn as nn

from workbench import checks, families
from workbench.hparams import Hparams
from workbench.registry import Registry
from workbench.targets import Target

METHODS = Registry("method")
SCHEDULES = ("one-shot", "gradual", "iterative")


@dataclass
class Context:
    """What a method may look at besides the model: shapes, labelled calibration data, the dense reference, seed.

    `reference` holds the dense model's counts (`flops`, `params`, `prunable_weights`) against which targets are
    measured; `calibration` is (inputs, labels) from the training split, or None for methods that need no data.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    reference: dict[str, float]
    seed: int = 0
    calibration: tuple[torch.Tensor, torch.Tensor] | None = None
    validation: tuple[torch.Tensor, torch.Tensor] | None = None  # the validation split, for methods that select
    level: int = 1
    levels: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    train: Callable[..., None] | None = None  # train(model, epochs, lr, callbacks=()) on the training split (pipeline)

    def calibration_inputs(self, method: str) -> torch.Tensor:
        """The calibration inputs, or a one-line error saying that `method` needs calibration data."""
        if self.calibration is None:
            raise ValueError(f"{method} needs calibration data, got none (set calibration_size >= 1)")
        return self.calibration[0]


class Method:
    """Base class: subclasses set the class attributes and implement `prune`."""

    name: ClassVar[str]
    family: ClassVar[str]
    granularity: ClassVar[str]
    targets: ClassVar[tuple[type[Target], ...]]
    cite: ClassVar[str]
    summary: ClassVar[str]
    needs_data: ClassVar[bool] = False
    needs_validation: ClassVar[bool] = False  # gets the validation split as a labelled batch (e.g. a sensitivity scan)
    structural: ClassVar[bool] = False  # removes channels (the model shrinks) rather than masking weights
    schedule: ClassVar[str | None] = None  # a schedule the method always uses (e.g. "gradual"); None: the recipe's
    invertible: ClassVar[bool] = False  # keeps the highest per-weight scores, so the scores can be inverted (a control)
    Hparams: ClassVar[type[Hparams]] = Hparams

    def transform(self, model: nn.Module, hp: Hparams) -> nn.Module:
        """Change the model before dense training (e.g. insert gates); default: unchanged."""
        return model

    def training_callbacks(self, hp: Hparams, ctx: Context) -> list:
        """Callbacks of dense training (e.g. a regulariser); default: none."""
        return []

    def finetune_callbacks(self, hp: Hparams, ctx: Context) -> list:
        """Callbacks of fine-tuning after pruning; default: none."""
        return []

    def prune(self, model: nn.Module, target: Target, hp: Hparams, ctx: Context) -> None:
        """Prune `model` in place to `target` (measured against `ctx.reference`)."""
        raise NotImplementedError

    def metrics(self, model: nn.Module, hp: Hparams) -> dict[str, Any]:
        """Measurements only this method's runs have (e.g. measured storage of shared weights); default: none."""
        return {}

    def check_model(self, model: nn.Module, hp: Hparams) -> None:
        """A one-line ConfigError if the method cannot work on this (freshly built) model; default: any model."""

    def check_budget(self, model: nn.Module, target: Target, hp: Hparams, input_shape) -> None:
        """A one-line ConfigError if no pruned version of this (freshly built) model can meet `target`; default:
        not checked here (methods that meet any target, or find out while pruning)."""

    def shapes_dense_training(self) -> bool:
        """True if the method changes dense training (transform or training callbacks), so its dense run is its own."""
        cls = type(self)
        return cls.transform is not Method.transform or cls.training_callbacks is not Method.training_callbacks

    def hparams(self, **values: Any) -> Hparams:
        """This method's hyperparameters from keyword values, validated."""
        return self.Hparams.build(owner=self.name, **values)

    def check_target(self, target: Target) -> Target:
        """`target` if this method accepts its kind, else a one-line error naming the accepted kinds."""
        if not isinstance(target, self.targets):
            kinds = ", ".join(t.kind for t in self.targets)
            raise checks.ConfigError(f"method {self.name!r} does not take a {target.kind} target; accepted: {kinds}")
        return target


INVERT_SCORES = "invert_scores"
"""`ctx.extra` key: when true, an invertible method keeps the *lowest* scores (Frankle et al.'s 2021 sanity check)."""


SEARCH_REPORT = "search_report"
"""`ctx.extra` key: what a searcher reports about its search (trials, cost); the pipeline puts it in the record."""


def oriented(scores: dict, ctx: Context) -> dict:
    """`scores` (non-negative, higher = keep), or their inversion max - s when the context asks for it.

    One maximum over all layers, so a global threshold on the inverted scores keeps exactly the weights a global
    threshold on the scores would remove first. torch.nn.utils.prune ranks |score|, hence non-negative values.
    """
    if not ctx.extra.get(INVERT_SCORES):
        return scores
    top = max(float(s.max()) for s in scores.values())
    return {name: top - s for name, s in scores.items()}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: check a method's info and register one instance under its name."""
    for attr in ("name", "family", "granularity", "targets", "cite", "summary"):
        if not getattr(cls, attr, None):
            raise TypeError(f"method class {cls.__name__} must set {attr}")
    families.check_family(cls.family)
    checks.choice("granularity", cls.granularity, families.GRANULARITIES)
    if cls.schedule is not None:
        checks.choice("schedule", cls.schedule, SCHEDULES)
    if not (inspect.isclass(cls.Hparams) and issubclass(cls.Hparams, Hparams)):
        raise TypeError(f"{cls.__name__}.Hparams must subclass workbench.hparams.Hparams")
    info = {
        "family": cls.family,
        "granularity": cls.granularity,
        "targets": tuple(t.kind for t in cls.targets),
        "needs_data": cls.needs_data,
        "structural": cls.structural,
        "schedule": cls.schedule,
        "invertible": cls.invertible,
        "cite": cls.cite,
        "summary": cls.summary,
    }
    METHODS.register(cls.name, **info)(cls())
    return cls


def get(name: str) -> Method:
    """The registered method called `name` (one-line error with close matches otherwise)."""
    return METHODS.get(name)
