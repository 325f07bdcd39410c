"""`workbench bench latency-table`: how far NetAdapt's lookup table is from measured latency of whole pruned models.

A randomly initialised model's table is built (or read from the cache), random candidates are drawn at several
latency budgets (SearchSpace.project), and each candidate's prediction is set beside its latency measured in the
same process, every candidate timed in alternating rounds with the dense model (medians), as the runs are timed.
"""

from __future__ import annotations

import argparse
import json
import statistics


def table_error(model: str, batch_size: int, threads: int, candidates: int, fractions, rounds: int, points: int,
                max_ratio: float = 0.8, seed: int = 0) -> list[dict]:  # fmt: skip
    """One row per candidate: budget, predicted and measured ms, relative error; the dense model first."""
    import numpy as np
    import torch

    from workbench import models
    from workbench.search import latency_table
    from workbench.search.space import SearchSpace
    from workbench.targets import LatencyBudget

    info = models.MODELS.info(model)
    shape = tuple(info["input_shape"])
    torch.manual_seed(seed)
    net = models.build(model, 10, shape).eval()
    probe = SearchSpace(net, shape, LatencyBudget(1e9, batch_size, threads), None, max_ratio, table_points=points)
    table, dense = probe.table, probe.budget.dense
    rng = np.random.default_rng(seed)
    built = [("dense", None, [0] * len(probe))]
    for fraction in fractions:
        space = SearchSpace(net, shape, LatencyBudget(dense * fraction, batch_size, threads), None, max_ratio,
                            table_points=points)  # fmt: skip
        built += [(f"{fraction:g} x dense", fraction, space.project(rng.random(len(space)))) for _ in
                  range(candidates)]  # fmt: skip
    measured = {i: [] for i in range(len(built))}
    ready = [probe.candidate(counts) if i else net for i, (_, _, counts) in enumerate(built)]
    for _ in range(rounds):
        for i, candidate in enumerate(ready):
            measured[i].append(latency_table.whole_model_ms(candidate, shape, batch_size, threads, 0.003))
    rows = []
    for i, (label, fraction, counts) in enumerate(built):
        predicted = table.predict(probe.planner.widths(counts))
        ms = statistics.median(measured[i])
        rows.append({"model": model, "candidate": label, "budget_ms": None if fraction is None else dense * fraction,
                     "predicted_ms": predicted, "measured_ms": ms, "error": predicted / ms - 1,
                     "batch_size": batch_size, "threads": threads, "table_points": points})  # fmt: skip
    return rows


def add_command(kinds) -> None:
    p = kinds.add_parser(
        "latency-table", help="NetAdapt lookup-table predictions vs measured latency of pruned models",
        description="Build a randomly initialised model's latency lookup table, draw random candidates at latency "
        "budgets (fractions of the dense prediction) and time each whole candidate in alternating rounds with the "
        "dense model; print predicted, measured and the relative error.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    p.add_argument("--model", default="resnet20", help="a name from workbench.models.MODELS")
    p.add_argument("--batch-size", type=int, default=64, help="images per timed forward pass")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the timing")
    p.add_argument("--candidates", type=int, default=4, help="random candidates per budget")
    p.add_argument("--fractions", default="0.9,0.75,0.6", help="comma-separated budgets as fractions of dense")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians kept)")
    p.add_argument("--points", type=int, default=5, help="table widths per side")
    p.add_argument("--json", action="store_true", help="print one JSON object per candidate")

    def handler(a) -> int:
        from workbench import models

        models.MODELS.check(a.model)
        fractions = [float(f) for f in a.fractions.split(",")]
        rows = table_error(a.model, a.batch_size, a.threads, a.candidates, fractions, a.rounds, a.points)
        for row in rows:
            print(json.dumps(row) if a.json else _line(row))
        errors = [abs(r["error"]) for r in rows[1:]]
        if errors and not a.json:
            print(f"{'':>12} mean |error| {statistics.mean(errors) * 100:.1f}%, max {max(errors) * 100:.1f}% over "
                  f"{len(errors)} candidates")  # fmt: skip
        return 0

    p.set_defaults(handler=handler)


def _line(row: dict) -> str:
    return (
        f"{row['model']:>10} {row['candidate']:>12}: predicted {row['predicted_ms']:7.3f} ms, measured "
        f"{row['measured_ms']:7.3f} ms, error {row['error'] * 100:+6.1f}% (batch {row['batch_size']}, "
        f"{row['threads']} thread(s))"
    )
