"""Evolutionary search over per-group widths with Optuna's NSGA-II: maximise proxy accuracy, minimise cost.

A stand-in for the evolutionary searches He & Xiao survey: ABCPruner (Lin et al., IJCAI 2020) searches per-layer
channel counts with an artificial bee colony, scoring each candidate after a short fine-tuning; MetaPruning (Liu et
al., ICCV 2019) evolves encoding vectors of per-layer widths scored with weights from a meta-trained PruningNet.
Here the genome is the kept fraction of every group, the candidate keeps its channels by L1 norm from the trained
model and is scored after adaptive BN (EagleEye's proxy; MetaPruning also recalibrates BN), and the search is
multi-objective (Deb et al.'s NSGA-II with constraint domination: candidates over the budget are dominated by any
within it), so one study gives the whole accuracy/cost front. The answer is the most accurate candidate within the
budget; if none is, the most accurate one's shape scaled onto the budget, evaluated as one more candidate.
"""

from __future__ import annotations

import time

from workbench.search import studies
from workbench.search.proxy import Evaluator
from workbench.search.space import SearchResult, SearchSpace


def search(space: SearchSpace, evaluator: Evaluator, study, population: int, generations: int, seed: int,
           after=None) -> SearchResult:  # fmt: skip
    """`population` x `generations` candidates in `study` (two objectives; resumable); the best within the budget."""
    import optuna

    start, limit, dense = time.perf_counter(), space.budget.limit, space.budget.dense

    def objective(trial) -> tuple[float, float]:
        keep = [trial.suggest_float(f"g{i:02d}", 1 - space.max_ratio, 1.0) for i in range(len(space))]
        counts = space.counts([1 - k for k in keep])
        proxy = evaluator(space.candidate(counts))
        cost = space.cost(counts)
        trial.set_user_attr("candidate", space.describe(counts))
        trial.set_user_attr("proxy_top1", proxy)
        trial.set_constraint("budget", (cost - limit) / dense)  # feasible when <= 0 (NSGA-II constraint domination)
        return proxy, cost / dense

    def sampler(k: int):
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed * 100_003 + k)

    studies.run_trials(study, population * generations, sampler, objective, after)
    trials = studies.trace(study)
    feasible = [t for t in trials if t["candidate"]["cost"] <= limit * (1 + 1e-12)]
    extra = {"proxy": evaluator.mode, "feasible": len(feasible), "pareto": pareto_front(trials)}
    if feasible:
        best = max(feasible, key=lambda t: (t["proxy_top1"], -t["trial"]))
        counts = space.from_kept(best["candidate"]["kept"])
    else:
        best = max(trials, key=lambda t: (t["proxy_top1"], -t["trial"]))
        counts = space.project(best["candidate"]["ratios"])
        extra["repaired"] = {"from_trial": best["trial"], "proxy_top1": evaluator(space.candidate(counts))}
    return SearchResult(counts, trials, time.perf_counter() - start, evaluator.evaluated, extra)


def pareto_front(trials: list[dict]) -> list[int]:
    """Trial numbers on the accuracy/cost front: no other trial is at least as accurate and as cheap, and better in
    one of the two (over all candidates, within the budget or not)."""
    points = [(t["trial"], t["proxy_top1"], t["candidate"]["cost"]) for t in trials]
    return [n for n, acc, cost in points
            if not any((a >= acc and c <= cost) and (a > acc or c < cost) for _, a, c in points)]  # fmt: skip
