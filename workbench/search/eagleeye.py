"""EagleEye (Li et al., ECCV 2020): random pruning strategies under the budget, each scored by validation accuracy
after adaptive batch-norm recalibration (no fine-tuning); the best one is then fine-tuned (by the pipeline).

Here a strategy is a random direction of per-group ratios scaled to spend the budget (SearchSpace.project), where
EagleEye draws per-layer ratios and keeps those whose FLOPs fall in a band under the target; its channels go by L1
norm as in the paper. `correlation` > 0 also fine-tunes that many candidates briefly and records their accuracy
plain, after adaptive BN and after fine-tuning: the paper's evidence that adaptive BN ranks candidates the way
fine-tuning does and plain evaluation does not.
"""

from __future__ import annotations

import time

from workbench.search import studies
from workbench.search.proxy import Evaluator
from workbench.search.space import SearchResult, SearchSpace


def search(space: SearchSpace, evaluator: Evaluator, study, candidates: int, seed: int, correlation: int = 0,
           finetuned: Evaluator | None = None, after=None) -> SearchResult:  # fmt: skip
    """`candidates` random budget-meeting strategies in `study` (resumable); the one of best adaptive-BN accuracy.

    `finetuned` scores the `correlation` first candidates after a short fine-tuning (the correlation figure).
    """
    import optuna

    start = time.perf_counter()

    def objective(trial) -> float:
        direction = [trial.suggest_float(f"g{i:02d}", 0.0, 1.0) for i in range(len(space))]
        counts = space.project(direction)
        model = space.candidate(counts)
        plain = evaluator.score(model)
        proxy = evaluator(model)
        trial.set_user_attr("candidate", space.describe(counts))
        trial.set_user_attr("plain_top1", plain)
        trial.set_user_attr("proxy_top1", proxy)
        return proxy

    studies.run_trials(study, candidates, lambda k: optuna.samplers.RandomSampler(seed=seed * 100_003 + k), objective,
                       after)  # fmt: skip
    trials = studies.trace(study)
    best = max(trials, key=lambda t: (t["proxy_top1"], -t["trial"]))
    counts = space.from_kept(best["candidate"]["kept"])
    extra = {"proxy": evaluator.mode}
    if correlation and finetuned is not None:
        extra["correlation"] = [
            {"trial": t["trial"], "plain_top1": t["plain_top1"], "proxy_top1": t["proxy_top1"],
             "finetuned_top1": finetuned(space.candidate(space.from_kept(t["candidate"]["kept"])))}
            for t in trials[:correlation]
        ]  # fmt: skip
    seconds = time.perf_counter() - start
    return SearchResult(counts, trials, seconds, evaluator.evaluated + (finetuned.evaluated if finetuned else 0), extra)
