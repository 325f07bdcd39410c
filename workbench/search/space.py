"""The search space every automated searcher shares: one removal ratio per prunable group, a budget, exact costs.

A candidate is the number of units removed from each group of coupled channels (ChannelPlanner's groups, kept
counts multiples of `round_to`); which channels go inside a group is decided by a filter norm, as in NetAdapt, AMC's
released code and EagleEye. Its cost is exact for FLOPs (ChannelPlanner.estimate, the count metrics.flop_count gives
the pruned model) and predicted by a per-layer lookup table for latency (NetAdapt's table, `latency_table`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch.nn as nn

from workbench import checks, metrics
from workbench.pruning import ranking, structural
from workbench.search import latency_table
from workbench.targets import FlopsReduction, LatencyBudget, LatencyFraction, Target

BUDGETS = (FlopsReduction, LatencyBudget)


@dataclass(frozen=True)
class Budget:
    """What a candidate may cost: `kind` ("flops" or "latency_ms"), the `limit`, and the dense model's cost."""

    kind: str
    limit: float
    dense: float

    def describe(self, value: float) -> str:
        if self.kind == "flops":
            return f"{self.dense / value:.3f}x FLOPs"
        return f"{value:.4g} ms (lookup table)"


class SearchSpace:
    """Per-group removal ratios of `model` under the budget `target` (measured against the model as given).

    Args:
        model: the trained model (made traceable in place, same function; candidates are pruned copies).
        input_shape: one example's shape.
        target: FlopsReduction or LatencyBudget.
        round_to: kept channel counts multiples of this (None: no rounding).
        max_ratio: the most of any group a candidate removes.
        p: the filter norm choosing channels inside a group (1 or 2).
        table_points: widths per side of the latency lookup table (latency budgets; measured once, then cached).
        dense_flops: the FLOPs a FLOPs budget divides (the pipeline's dense reference); default: `model`'s own,
            counted before it is made traceable (option-A shortcuts count no FLOPs, their traceable form does).
    """

    def __init__(self, model: nn.Module, input_shape, target: Target, round_to: int | None = None,
                 max_ratio: float = 0.9, p: int = 1, table_points: int = 5,
                 dense_flops: float | None = None):  # fmt: skip
        if not isinstance(target, BUDGETS):
            kinds = ", ".join(t.kind for t in (*BUDGETS, LatencyFraction))
            raise checks.ConfigError(f"an automated search takes a {kinds} budget, got {target.kind}")
        self.model, self.input_shape, self.target, self.table = model, tuple(input_shape), target, None
        self.max_ratio = max_ratio
        if dense_flops is None:
            dense_flops = metrics.flop_count(model, input_shape)["flops"]
        structural.make_traceable(model)  # option-A shortcuts as fixed convolutions (same function), as every
        self.planner = structural.ChannelPlanner(
            model, input_shape, ranking.FilterNorm(p=p), "uniform", round_to, max_ratio
        )
        self.groups = [plan.name for plan in self.planner.plans]
        self.units = [plan.units for plan in self.planner.plans]
        if isinstance(target, LatencyBudget):
            self.table = latency_table.cached(
                model,
                input_shape,
                self.width_bounds(),
                lambda: self.candidate(self.most_removed()),
                target.batch_size,
                target.threads,
                table_points,
            )
        if isinstance(target, FlopsReduction):
            self.budget = Budget("flops", dense_flops / target.value, float(dense_flops))
        else:
            dense = self.cost([0] * len(self.groups))
            self.budget = Budget("latency_ms", target.limit_ms(dense), dense)

    def __len__(self) -> int:
        return len(self.groups)

    def width_bounds(self) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
        """{layer: ((narrowest, dense) inputs, (narrowest, dense) outputs)} over every candidate of the space."""
        dense, narrow = self.planner.widths([0] * len(self.groups)), self.planner.widths(self.most_removed())
        return {n: ((narrow[n][0], dense[n][0]), (narrow[n][1], dense[n][1])) for n in dense}

    def counts(self, ratios) -> list[int]:
        """Units removed per group for per-group removal ratios (each capped at max_ratio, kept counts rounded)."""
        return self.planner.counts_at([min(max(float(r), 0.0), self.max_ratio) for r in ratios])

    def ratios(self, counts: list[int]) -> list[float]:
        """The fraction of each group's channels that `counts` removes."""
        return [k / units for k, units in zip(counts, self.units, strict=True)]

    def from_kept(self, kept: list[int]) -> list[int]:
        """Units removed per group from the channels kept per group (the inverse of `kept`)."""
        return [units - k for k, units in zip(kept, self.units, strict=True)]

    def kept(self, counts: list[int]) -> list[int]:
        return [units - k for k, units in zip(counts, self.units, strict=True)]

    def flops(self, counts: list[int]) -> int:
        return self.planner.estimate(counts)["flops"]

    def cost(self, counts: list[int]) -> float:
        """FLOPs (exact) or latency in ms (the lookup table's prediction) after removing `counts`."""
        if isinstance(self.target, LatencyBudget):
            return self.table.predict(self.planner.widths(counts))
        return float(self.flops(counts))

    def fits(self, counts: list[int]) -> bool:
        return self.cost(counts) <= self.budget.limit * (1 + 1e-12)

    def most_removed(self) -> list[int]:
        return self.counts([self.max_ratio] * len(self))

    def check_reachable(self) -> None:
        """A one-line error if the budget is above the dense cost or below what removing max_ratio everywhere gives."""
        b = self.budget
        if b.limit >= b.dense and type(self.target) is LatencyBudget:
            raise checks.ConfigError(
                f"latency budget {b.limit:g} ms is not below the dense model's {b.dense:.4g} ms (lookup table, batch "
                f"{self.target.batch_size}, {self.target.threads} thread(s)); accepted: below {b.dense:.4g} ms"
            )
        lowest = self.cost(self.most_removed())
        if lowest > b.limit:
            raise checks.ConfigError(
                f"budget {self.target.label()} is out of reach: removing {self.max_ratio:g} of every group leaves "
                f"{b.describe(lowest)}; accepted: a budget of at least that"
            )

    def project(self, direction) -> list[int]:
        """The candidate along `direction` (a weight >= 0 per group) that meets the budget with the least removal:
        ratios min(max_ratio, a * direction) for the smallest scale a that fits (bisection; the cost falls as a
        grows). Spends the budget as fully as the rounding allows, so random directions give budget-meeting
        candidates of different shapes (EagleEye's random candidates; NSGA-II's repaired children)."""
        weights = [max(float(w), 1e-3) for w in direction]
        top = self.max_ratio / min(weights)
        if not self.fits(self.counts([top * w for w in weights])):
            return self.most_removed()
        if self.fits(self.counts([0.0] * len(self))):
            return self.counts([0.0] * len(self))
        low, high = 0.0, top
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (low, mid) if self.fits(self.counts([mid * w for w in weights])) else (mid, high)
        return self.counts([high * w for w in weights])

    def candidate(self, counts: list[int]) -> nn.Module:
        """A pruned copy of the model with `counts` units removed per group (the norm picks which)."""
        pruned = copy.deepcopy(self.model)
        self.planner.apply(list(counts), pruned)
        return pruned

    def apply(self, counts: list[int]) -> list:
        """Remove `counts` from the model itself; returns the removals (for replay)."""
        return self.planner.apply(list(counts))

    def describe(self, counts: list[int]) -> dict:
        """The candidate as plain values: kept channels and ratios per group, FLOPs, and its budget cost."""
        return {
            "kept": self.kept(counts),
            "ratios": [round(r, 6) for r in self.ratios(counts)],
            "flops": self.flops(counts),
            "cost": self.cost(counts),
        }


@dataclass
class SearchResult:
    """A searcher's answer: the candidate (units removed per group), its description, and what the search did."""

    counts: list[int]
    trials: list[dict]
    seconds: float
    evaluated: int
    extra: dict

    def report(self, searcher: str, space: SearchSpace, study: str) -> dict:
        """The record's view: scalar cost of the search, and the whole trace under `search`."""
        chosen = space.describe(self.counts)
        search = {"searcher": searcher, "study": study, "groups": space.groups, "units": space.units,
                  "budget": {"kind": space.budget.kind, "limit": space.budget.limit, "dense": space.budget.dense},
                  "chosen": chosen, "trials": self.trials, **self.extra}  # fmt: skip
        return {"search_seconds": self.seconds, "search_candidates": self.evaluated,
                "search_cost_fraction": chosen["cost"] / space.budget.dense,
                "search_within_budget": chosen["cost"] <= space.budget.limit * (1 + 1e-12),
                "search": search}  # fmt: skip
