"""The automated family: searchers that choose how many channels every group keeps under a FLOPs or latency budget.

Each searcher runs on the trained dense model, scores candidates on the validation split only (plain accuracy,
adaptive BN or a short fine-tuning: `workbench.search.proxy`), records every candidate as a trial of an Optuna study
(a journal file under the run cache unless `storage` names a database; a stopped search resumes), removes the winner's
channels and leaves the fine-tuning to the pipeline, with the same budget every method gets. The baseline every
searcher must beat is uniform allocation with L1 ranking at the same budget: the `l1` method of filter ranking.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from workbench import checks
from workbench.config import stable_hash
from workbench.hparams import Hparams, param
from workbench.methods.base import SEARCH_REPORT, Context, Method, register
from workbench.pruning import structural
from workbench.search import amc, eagleeye, evolution, netadapt, proxy, studies
from workbench.search.space import SearchSpace
from workbench.targets import FlopsReduction, LatencyBudget, LatencyFraction, Target


@dataclass(frozen=True)
class SearchHparams(Hparams):
    round_to: int = param(0, "kept channel counts multiples of this (0: no rounding)")
    max_ratio: float = param(0.8, "at most this fraction of any group's channels is removed (AMC keeps >= 0.2)")
    storage: str = param("", "Optuna storage URL for the study ('': a journal file under the run cache)")
    table_points: int = param(5, "widths per side of the latency lookup table (latency budgets)")
    proxy_batch: int = param(64, "examples per forward pass while scoring candidates (adaptive BN batches)")

    def __post_init__(self):
        checks.integer("round_to", self.round_to, 0)
        checks.number("max_ratio", self.max_ratio, 0.0, 1.0, open_high=True)
        if not isinstance(self.storage, str):
            raise checks.ConfigError(f"storage must be a database URL or '', got {self.storage!r}")
        checks.integer("table_points", self.table_points, 2)
        checks.integer("proxy_batch", self.proxy_batch, 1)


@dataclass(frozen=True)
class EagleEyeHparams(SearchHparams):
    candidates: int = param(30, "random budget-meeting candidates scored after adaptive BN")
    correlation: int = param(0, "candidates also fine-tuned briefly, to correlate the proxies with fine-tuned accuracy")
    correlation_steps: int = param(60, "fine-tuning steps of each correlation candidate")
    correlation_lr: float = param(0.01, "learning rate of that fine-tuning")

    def __post_init__(self):
        super().__post_init__()
        checks.integer("candidates", self.candidates, 1)
        checks.integer("correlation", self.correlation, 0)
        checks.integer("correlation_steps", self.correlation_steps, 1)
        checks.number("correlation_lr", self.correlation_lr, 0.0)
        if self.correlation > self.candidates:
            raise checks.ConfigError(f"correlation {self.correlation} is more than the {self.candidates} candidates; "
                                     f"accepted: 0 to {self.candidates}")  # fmt: skip


@dataclass(frozen=True)
class EvolutionHparams(SearchHparams):
    population: int = param(8, "NSGA-II population size")
    generations: int = param(4, "generations (population x generations candidates)")
    proxy: str = param("adaptive_bn", "how a candidate is scored: plain, adaptive_bn")

    def __post_init__(self):
        super().__post_init__()
        checks.integer("population", self.population, 2)
        checks.integer("generations", self.generations, 1)
        checks.choice("proxy", self.proxy, ("plain", "adaptive_bn"))


@dataclass(frozen=True)
class NetAdaptHparams(SearchHparams):
    iterations: int = param(4, "iterations to reach the budget (equal cost reductions unless decay < 1)")
    decay: float = param(1.0, "each iteration's cost reduction is the previous one's times this")
    short_steps: int = param(20, "short-term fine-tuning steps of every proposal")
    short_lr: float = param(0.01, "learning rate of the short-term fine-tuning")

    def __post_init__(self):
        super().__post_init__()
        checks.integer("iterations", self.iterations, 1)
        checks.number("decay", self.decay, 0.0, 1.0, open_low=True)
        checks.integer("short_steps", self.short_steps, 0)
        checks.number("short_lr", self.short_lr, 0.0)


@dataclass(frozen=True)
class AmcHparams(SearchHparams):
    episodes: int = param(40, "episodes of the agent (one candidate each)")
    warmup: int = param(15, "first episodes with uniform random actions (filling the replay buffer)")
    lr: float = param(1e-3, "DDPG learning rate (actor and critic)")
    noise: float = param(0.5, "initial scale of the exploration noise")
    noise_decay: float = param(0.95, "exploration scale factor per episode after the warm-up")
    proxy: str = param("plain", "how an episode's network is scored: plain (AMC's reward), adaptive_bn")

    def __post_init__(self):
        super().__post_init__()
        checks.integer("episodes", self.episodes, 1)
        checks.integer("warmup", self.warmup, 0)
        if self.warmup >= self.episodes:
            raise checks.ConfigError(f"warmup {self.warmup} leaves no learning episode of {self.episodes}; "
                                     f"accepted: 0 to {self.episodes - 1}")  # fmt: skip
        checks.number("lr", self.lr, 0.0)
        checks.number("noise", self.noise, 0.0)
        checks.number("noise_decay", self.noise_decay, 0.0, 1.0)
        checks.choice("proxy", self.proxy, ("plain", "adaptive_bn"))


_REACHABLE: dict[tuple, bool] = {}
"""Budgets already checked on a (shared, freshly built) model."""


class Searcher(Method):
    """Common path: the space on the dense model, the study, the search, the winner's channels removed."""

    family, granularity, structural, schedule = "automated", "channel", True, "one-shot"
    needs_data, needs_validation = True, True
    targets = (FlopsReduction, LatencyBudget, LatencyFraction)
    Hparams = SearchHparams
    filter_norm = 1
    directions: tuple[str, ...] = ("maximize",)

    def check_model(self, model: nn.Module, hp: SearchHparams) -> None:
        studies.check_url(hp.storage)

    def check_budget(self, model: nn.Module, target: Target, hp: SearchHparams, input_shape) -> None:
        key = (id(model), target, hp.round_to, hp.max_ratio, hp.table_points, tuple(input_shape), self.filter_norm)
        if key not in _REACHABLE:  # a grid checks the same budget for many recipes
            self.space(copy.deepcopy(model), target, hp, input_shape).check_reachable()
            _REACHABLE[key] = True

    def space(self, model: nn.Module, target: Target, hp: SearchHparams, input_shape, dense_flops=None) -> SearchSpace:
        return SearchSpace(model, input_shape, target, hp.round_to or None, hp.max_ratio, self.filter_norm,
                           hp.table_points, dense_flops)  # fmt: skip

    def evaluator(self, hp, ctx: Context, mode: str, steps: int = 0, lr: float = 0.0) -> proxy.Evaluator:
        if ctx.validation is None or not len(ctx.validation[0]):
            raise ValueError(f"{self.name} scores candidates on the validation split; it is empty (val_fraction=0?)")
        finetune = None if ctx.train is None else (lambda m, n: ctx.train(m, 0, lr, steps=n))
        return proxy.Evaluator(ctx.validation, ctx.calibration_inputs(self.name), mode, finetune, steps,
                               hp.proxy_batch)  # fmt: skip

    def prune(self, model: nn.Module, target: Target, hp, ctx: Context) -> list:
        self.check_target(target)
        space = self.space(model, target, hp, ctx.input_shape, ctx.reference.get("flops"))
        space.check_reachable()
        name = ctx.extra.get("run_id") or f"{self.name}-seed{ctx.seed}"
        if space.table is not None:  # a study belongs to the lookup table its costs came from
            name = f"{name}-table-{stable_hash(space.table.to_json())}"
        study = studies.open_study(name, hp.storage, list(self.directions))
        with torch.enable_grad():
            result = self.search(space, hp, ctx, study)
        removed = self.remove(model, space, result, ctx)
        ctx.extra[SEARCH_REPORT] = result.report(self.name, space, name)
        return removed

    def remove(self, model: nn.Module, space: SearchSpace, result, ctx: Context) -> list:
        """Remove the winner's channels from `model` (the space's model); returns the removals (for replay)."""
        return space.apply(result.counts)

    def search(self, space: SearchSpace, hp, ctx: Context, study):
        raise NotImplementedError


@register
class EagleEye(Searcher):
    name, cite, Hparams = "eagleeye", "li2020eagleeye", EagleEyeHparams
    summary = "random budget-meeting widths scored after adaptive batch-norm recalibration; the best fine-tuned"

    def search(self, space, hp: EagleEyeHparams, ctx, study):
        finetuned = None
        if hp.correlation:
            finetuned = self.evaluator(hp, ctx, "finetune", hp.correlation_steps, hp.correlation_lr)
        return eagleeye.search(space, self.evaluator(hp, ctx, "adaptive_bn"), study, hp.candidates, ctx.seed,
                               hp.correlation, finetuned)  # fmt: skip


@register
class Evolution(Searcher):
    name, cite, Hparams = "nsga2", "lin2020channel", EvolutionHparams
    directions = ("maximize", "minimize")
    summary = "multi-objective evolution (Optuna NSGA-II) of per-group widths: proxy accuracy vs cost, within budget"

    def search(self, space, hp: EvolutionHparams, ctx, study):
        return evolution.search(space, self.evaluator(hp, ctx, hp.proxy), study, hp.population, hp.generations,
                                ctx.seed)  # fmt: skip


@register
class NetAdapt(Searcher):
    name, cite, Hparams = "netadapt", "yang2018netadapt", NetAdaptHparams
    filter_norm = 2
    summary = "one group shrinks per iteration to cut a share of the budget (latency: lookup table); short fine-tuning"

    def search(self, space, hp: NetAdaptHparams, ctx, study):
        evaluator = self.evaluator(hp, ctx, "finetune", hp.short_steps, hp.short_lr)
        return netadapt.search(space, evaluator, study, hp.iterations, hp.decay)

    def remove(self, model: nn.Module, space: SearchSpace, result, ctx: Context) -> list:
        """NetAdapt's answer is its last network, short-term fine-tuned: the same channels go from `model`, whose
        weights then become that network's (the pipeline's fine-tuning is NetAdapt's long-term fine-tuning)."""
        network, removed = result.extra.pop("network"), result.extra.pop("removed")
        out = structural.replay(model, ctx.input_shape, removed)
        model.load_state_dict(network.state_dict())
        return out


@register
class Amc(Searcher):
    name, cite, Hparams = "amc", "he2018amc", AmcHparams
    summary = "a DDPG agent (stable-baselines3) picks each group's preserve ratio; reward: validation accuracy"

    def search(self, space, hp: AmcHparams, ctx, study):
        return amc.search(space, self.evaluator(hp, ctx, hp.proxy), study, hp.episodes, hp.warmup, ctx.seed,
                          1 - hp.max_ratio, hp.lr, hp.noise, hp.noise_decay)  # fmt: skip
