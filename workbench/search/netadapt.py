"""NetAdapt (Yang et al., ECCV 2018): shrink the network step by step, each step cutting a share of the budget.

Iteration i asks for cost <= cost_now - delta_i (delta_i = initial * decay^i, the initial reduction chosen so that
`iterations` steps of the undecayed schedule reach the budget; a step no single group can make alone is halved).
For every group it proposes the widest width of that group alone that meets the step's cost (exact FLOPs, or the
latency lookup table of this CPU), removes its smallest L2-norm filters (as the paper), fine-tunes the proposal for a
few steps ("short-term fine-tuning") and scores it on the validation split; the best proposal becomes the network of
the next iteration. It stops once the budget is met; the pipeline then fine-tunes the result ("long-term
fine-tuning"). Every proposal is a trial of the study; a search
started again reuses the stored proposals' scores and only re-trains each iteration's winner (deterministic).
"""

from __future__ import annotations

import copy
import time

import torch.nn as nn

from workbench.pruning import ranking, structural
from workbench.search import studies
from workbench.search.proxy import Evaluator
from workbench.search.space import SearchResult, SearchSpace


def step_widths(space: SearchSpace, kept: list[int], group: int, limit: float) -> int | None:
    """The most channels group `group` can keep (below its current `kept`) so that the cost is within `limit`."""
    step = space.planner.round_to or 1
    floor = space.kept(space.most_removed())[group]
    trial = list(kept)
    width = kept[group] - step
    while width >= floor:
        trial[group] = width
        if space.cost(space.from_kept(trial)) <= limit:
            return width
        width -= step
    return None


def search(space: SearchSpace, evaluator: Evaluator, study, iterations: int, decay: float = 1.0,
           after=None) -> SearchResult:  # fmt: skip
    """NetAdapt from `space.model`; returns the last iteration's widths, with in `extra` its network (`network`) and
    the channels it lost in the original model's indexing (`removed`, one replayable list).

    `evaluator` must fine-tune briefly (mode "finetune"): each proposal is a pruned, short-term fine-tuned copy of
    the current network. `after(study)` runs after each stored proposal (tests stop a search there).
    """
    import optuna

    start = time.perf_counter()
    done = {(t["iteration"], tuple(t["candidate"]["kept"])): t for t in studies.trace(study)}
    distribution = {"group": optuna.distributions.IntDistribution(0, max(len(space) - 1, 1))}
    current: nn.Module = copy.deepcopy(space.model)
    kept = space.kept([0] * len(space))
    surviving = {name: list(range(units)) for name, units in zip(space.groups, space.units, strict=True)}
    cost, limit = space.cost(space.from_kept(kept)), space.budget.limit
    initial = (cost - limit) / iterations
    i = 0
    while cost > limit * (1 + 1e-12):
        reduction = initial * decay**i if i < 10 * iterations else cost - limit
        while True:  # a step no single group can make alone is halved (the budget stays reachable group by group)
            target = max(cost - reduction, limit)
            widths = [step_widths(space, kept, g, target) for g in range(len(space))]
            if any(w is not None for w in widths) or reduction < 1e-6 * limit:
                break
            reduction /= 2
        proposals = []
        for g, width in enumerate(widths):
            if width is None:
                continue
            new_kept = list(kept)
            new_kept[g] = width
            stored = done.get((i, tuple(new_kept)))
            if stored is not None:  # resumed: the stored score, the network rebuilt only if it wins
                proposals.append((stored["proxy_top1"], -g, new_kept, None))
                continue
            model, lost = prune_group(current, space, g, width)
            score = evaluator(model)
            proposals.append((score, -g, new_kept, (model, lost)))
            attrs = {"iteration": i, "group": g, "candidate": space.describe(space.from_kept(new_kept)),
                     "proxy_top1": score, "step_limit": target}  # fmt: skip
            studies.add_trial(study, {"group": g}, distribution, score, attrs)
            if after is not None:
                after(study)
        if not proposals:
            raise ValueError(f"NetAdapt found no single-group proposal meeting {target:.6g} at iteration {i}")
        _, neg_g, kept, built = max(proposals, key=lambda p: (p[0], p[1]))
        if built is None:  # same pruning and the same seeded short-term fine-tuning as when it was first made
            model, lost = prune_group(current, space, -neg_g, kept[-neg_g])
            built = (evaluator.prepare(model), lost)
        current, lost = built
        name = space.groups[-neg_g]
        surviving[name] = [c for j, c in enumerate(surviving[name]) if j not in set(lost)]
        cost, i = space.cost(space.from_kept(kept)), i + 1
    removed = [
        (name, sorted(set(range(units)) - set(surviving[name])))
        for name, units in zip(space.groups, space.units, strict=True)
        if len(surviving[name]) < units
    ]
    extra = {"proxy": evaluator.mode, "iterations": i, "network": current, "removed": removed}
    return SearchResult(space.from_kept(kept), studies.trace(study), time.perf_counter() - start, evaluator.evaluated,
                        extra)  # fmt: skip


def prune_group(current: nn.Module, space: SearchSpace, group: int, width: int) -> tuple[nn.Module, list[int]]:
    """A copy of `current` whose group `group` keeps `width` channels (its smallest L2-norm filters removed), and
    the removed channels in `current`'s indexing."""
    model = copy.deepcopy(current)
    planner = structural.ChannelPlanner(model, space.input_shape, ranking.FilterNorm(p=2), "uniform",
                                        space.planner.round_to, 0.999999)  # fmt: skip
    name = space.groups[group]
    counts = [plan.units - width if plan.name == name else 0 for plan in planner.plans]
    lost = dict(planner.apply(counts))[name]
    return model, lost
