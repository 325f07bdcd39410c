"""`workbench bench dynamic`: what skipping gated channels buys at batch 1 on this CPU, beside masked execution and a
static L1-pruned model at the same mean FLOPs. Imports no torch at its top (the command line stays light)."""

from __future__ import annotations

import argparse
import json


def dynamic_speed(
    model: str = "vgg16_cifar",
    density: float = 0.5,
    inputs: int = 16,
    threads: int = 1,
    rounds: int = 5,
    static: bool = True,
    seed: int = 0,
) -> list[dict]:
    """FBS gates at `density` on a randomly initialised `model` (timing needs no training: FBS computes exactly
    ceil(d*C) channels per input), timed on `inputs` random inputs one at a time; rows of gating.timing.compare."""
    import copy

    import torch

    from workbench import models
    from workbench.gating import insert_gates
    from workbench.gating.cost import costs, per_input_flops
    from workbench.gating.timing import compare
    from workbench.methods import METHODS
    from workbench.pruning import structural
    from workbench.targets import FlopsReduction, GateDensity

    GateDensity(density)  # one line for a density outside (0, 1]
    models.MODELS.check(model)
    shape = tuple(models.MODELS.info(model)["input_shape"])
    torch.manual_seed(seed)
    dense = models.build(model, 10, shape).eval()
    gated = insert_gates(copy.deepcopy(dense), "fbs", density=density).eval()
    x = torch.randn(inputs, *shape)
    pruned = None
    if static:
        reduction = float(dense_flops(dense, shape) / per_input_flops(gated, x, costs(gated, shape)).mean())
        pruned = structural.make_traceable(copy.deepcopy(dense))
        importance = METHODS.get("l1").criterion(pruned, x, seed=seed)
        structural.prune_to_target(pruned, shape, importance, FlopsReduction(reduction), "uniform", None)
    rows = compare(dense, gated, x, pruned, threads=threads, rounds=rounds)
    return [{"model": model, "density": density, **row} for row in rows]


def dense_flops(model, shape) -> float:
    from workbench import metrics

    return metrics.flop_count(model, shape)["flops"]


def add_command(kinds) -> None:
    p = kinds.add_parser(
        "dynamic", help="batch-1 latency of dense, masked and skipping gated execution, and static L1",
        description="Insert FBS gates at a density into a randomly initialised model; time dense, masked (gates "
        "multiply, nothing skipped), skipping (only active channels computed) and L1 channel pruning to the same "
        "mean FLOPs, one input at a time, in alternating rounds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    p.add_argument("--model", default="vgg16_cifar", help="a name from workbench.models.MODELS with gateable convs")
    p.add_argument("--density", type=float, default=0.5, help="fraction of channels computed per input, in (0, 1]")
    p.add_argument("--inputs", type=int, default=16, help="random inputs timed one at a time")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the timing")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians kept)")
    p.add_argument("--no-static", action="store_true", help="leave out the static L1 model")
    p.add_argument("--json", action="store_true", help="print one JSON object per execution")

    def handler(a) -> int:
        rows = dynamic_speed(a.model, a.density, a.inputs, a.threads, a.rounds, static=not a.no_static)
        for row in rows:
            print(json.dumps(row) if a.json else _line(row))
        return 0

    p.set_defaults(handler=handler)


def _line(row: dict) -> str:
    return (
        f"{row['model']:>12} d={row['density']:<5g} {row['execution']:>7}: {row['ms_per_input']:8.3f} ms/input, "
        f"speedup {row['speedup']:5.2f}x, FLOPs speedup {row['flops_speedup']:5.2f}x, "
        f"efficiency {row['efficiency']:.2f} ({row['threads']} thread(s), batch 1)"
    )
