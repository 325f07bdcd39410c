"""`workbench bench speedup | prune-time` (`models` and `dynamic` live in their own files): what physical channel
pruning buys on this CPU, and what it costs to do."""

from __future__ import annotations

import argparse
import copy
import functools
import json
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ALLOCATIONS = ("uniform", "global")
"""structural.ALLOCATIONS, repeated so that building the command line imports no torch (a test checks they agree)."""


def check_criterion(name: str) -> str:
    """`name` if it is a registered filter-ranking criterion, else a one-line error listing them."""
    from workbench.methods import METHODS

    if name not in METHODS or METHODS.info(name).get("family") != "filter-ranking":
        raise ValueError(f"unknown criterion {name!r}; known: {', '.join(METHODS.names(family='filter-ranking'))}")
    return name


@functools.lru_cache(maxsize=16)
def max_flops_reduction(model: str, round_to: int | None = 8, max_ratio: float = 0.95) -> float:
    """The largest FLOPs reduction channel pruning reaches on `model` at its native input: every group pruned by
    `max_ratio`, counts rounded to `round_to` (an analytic count on a random model; about a second for ResNet-56)."""
    import torch
    import torch_pruning as tp

    from workbench import models
    from workbench.pruning import structural

    shape = tuple(models.MODELS.info(model)["input_shape"])
    torch.manual_seed(0)
    net = structural.make_traceable(models.build(model, 10, shape)).eval()
    importance = tp.importance.MagnitudeImportance(p=1)  # uniform counts do not depend on the scores
    planner = structural.ChannelPlanner(net, shape, importance, "uniform", round_to, max_ratio)
    return planner.dense["flops"] / planner.estimate(planner.counts(max_ratio))["flops"]


def check_reachable(model: str, flops_reduction: float, round_to: int | None = 8) -> float:
    """`flops_reduction` if channel pruning can reach it on `model`, else one line saying the maximum."""
    from workbench.targets import FlopsReduction

    FlopsReduction(flops_reduction)  # the target's own check: a number >= 1
    most = max_flops_reduction(model, round_to)
    if flops_reduction > most:
        raise ValueError(
            f"flops reduction {flops_reduction:g} cannot be reached on {model}: at most {most:.2f}x "
            f"(every group pruned by 95%, round_to {round_to or 0})"
        )
    return flops_reduction


def speedup(
    model: str = "resnet56",
    criterion: str = "l1",
    flops_reduction: float = 2.0,
    batch_size: int = 64,
    threads: int | None = None,
    round_to: int | None = 8,
    allocation: str = "uniform",
    fuse_bn: bool = True,
    channels_last: bool = True,
    calibration_size: int = 64,
    seed: int = 0,
    runtime: str = "eager",
    rounds: int = 5,
) -> dict:
    """Prune a randomly initialised `model` to `flops_reduction` with `criterion`; time dense, pruned and masks in
    `runtime` (eager, compile, onnxruntime: workbench.deploy.runtimes), in alternating rounds.

    An unreachable `flops_reduction` or an unknown runtime is refused in one line, before any timing. The record has
    the set-up seconds of each model apart from its latency, the largest difference between the runtime's logits
    and eager PyTorch's, and the serialised sizes of the three models (workbench.deploy.storage).
    """
    import torch

    from workbench import metrics, models
    from workbench.deploy import runtimes, storage, timing
    from workbench.methods import METHODS
    from workbench.pruning import ranking, structural  # noqa: F401  (ranking registers the criteria)
    from workbench.pruning.masks import masked_like
    from workbench.targets import FlopsReduction

    method = METHODS.get(check_criterion(criterion))
    runtimes.check_runtimes([runtime])
    check_reachable(model, flops_reduction, round_to)
    shape = tuple(models.MODELS.info(model)["input_shape"])
    threads = threads or torch.get_num_threads()
    torch.manual_seed(seed)
    dense = models.build(model, 10, shape).eval()  # timed as users run it (option-A shortcuts as slicing)
    calibration = torch.randn(calibration_size, *shape)  # timing needs no trained weights or real images
    pruned = structural.make_traceable(copy.deepcopy(dense))
    importance = method.criterion(pruned, calibration, seed=seed)
    structural.prune_to_target(pruned, shape, importance, FlopsReduction(flops_reduction), allocation, round_to)
    options = {"fuse_bn": fuse_bn, "channels_last": channels_last}
    masked = masked_like(dense, pruned)  # timed with its zeros stored densely: what masks run in PyTorch
    x = torch.randn(batch_size, *shape)
    nets = {"dense": dense, "pruned": pruned, "masked": masked}
    prepared = {name: runtimes.prepare(net, runtime, x, threads, **options) for name, net in nets.items()}
    with torch.no_grad():
        diff = max(float((prepared[n].run(x) - net(x)).abs().max()) for n, net in nets.items())
    ms = timing.alternating(prepared, x, threads, rounds)
    fd, fp = (metrics.flop_count(m, shape)["flops"] for m in (dense, pruned))
    measured = ms["dense"] / ms["pruned"]
    return {
        "model": model, "criterion": criterion, "flops_reduction_target": flops_reduction,
        "allocation": allocation, "round_to": round_to, "runtime": runtime,
        "flops_dense": fd, "flops_pruned": fp,
        "params_dense": metrics.count_params(dense)["params"], "params_pruned": metrics.count_params(pruned)["params"],
        "latency_ms_dense": ms["dense"], "latency_ms_pruned": ms["pruned"], "speedup": measured,
        "batch_size": batch_size, "threads": threads, "rounds": rounds, **options,
        "flops_speedup": fd / fp, "efficiency": measured / (fd / fp),
        "unstructured_nonzero_params": metrics.count_params(masked)["nonzero_params"],
        "unstructured_latency_ms": ms["masked"], "unstructured_speedup": ms["dense"] / ms["masked"],
        "setup_seconds_dense": prepared["dense"].setup_seconds,
        "setup_seconds_pruned": prepared["pruned"].setup_seconds,
        "max_abs_diff_vs_eager": diff,
        **storage.sizes(dense=dense, pruned=pruned, masked=masked),
    }  # fmt: skip


def prune_time(
    model: str = "resnet56",
    criteria: list[str] | None = None,
    flops_reduction: float = 2.0,
    calibration_size: int = 128,
    allocation: str = "uniform",
    round_to: int | None = None,
    tp_ratio: float = 0.3,
    seed: int = 0,
    input_shape: tuple[int, ...] | None = None,
) -> list[dict]:
    """Seconds each criterion takes to prune a fresh random `model` to `flops_reduction`, next to Torch-Pruning's own.

    `seconds` covers scoring (calibration statistics included), allocation and removal; `tp_step_seconds` is
    tp.pruner.MetaPruner's step() at `tp_ratio` with MagnitudeImportance(p=1) on the same model, measured just before,
    and `tp_total_seconds` adds the pruner's construction (its dependency graph), which `seconds` also includes.
    """
    from workbench import models
    from workbench.methods import METHODS

    names = [check_criterion(n) for n in criteria or METHODS.names(family="filter-ranking")]
    shape = tuple(input_shape or models.MODELS.info(model)["input_shape"])
    return [
        _time_criterion(model, name, shape, flops_reduction, calibration_size, allocation, round_to, tp_ratio, seed)
        for name in names
    ]


def _time_criterion(model, criterion, shape, flops_reduction, calibration_size, allocation, round_to, tp_ratio, seed):
    import torch

    from workbench import metrics, models
    from workbench.methods import METHODS
    from workbench.pruning import structural
    from workbench.targets import FlopsReduction

    torch.manual_seed(seed)
    dense = structural.make_traceable(models.build(model, 10, shape)).eval()
    calibration = torch.randn(calibration_size, *shape)
    reference = tp_step(copy.deepcopy(dense), shape, tp_ratio)
    pruned = copy.deepcopy(dense)
    start = time.perf_counter()
    importance = METHODS.get(criterion).criterion(pruned, calibration)
    structural.prune_to_target(pruned, shape, importance, FlopsReduction(flops_reduction), allocation, round_to)
    seconds = time.perf_counter() - start
    dense_flops, pruned_flops = (metrics.flop_count(m, shape)["flops"] for m in (dense, pruned))
    return {
        "model": model,
        "criterion": criterion,
        "target": {"flops_reduction": flops_reduction},
        "allocation": allocation,
        "round_to": round_to,
        "calibration_size": calibration_size,
        "seconds": seconds,
        "flops_reduction": dense_flops / pruned_flops,
        **reference,
        "seconds_over_tp_total": seconds / reference["tp_total_seconds"],
        "threads": torch.get_num_threads(),
    }


def tp_step(model: torch.nn.Module, shape, ratio: float) -> dict:
    """Time Torch-Pruning's plain MetaPruner (L1 magnitude, uniform `ratio`, classifier protected) on `model`."""
    import torch
    import torch_pruning as tp

    from workbench.pruning import structural

    start = time.perf_counter()
    pruner = tp.pruner.MetaPruner(
        model,
        torch.zeros(1, *shape),
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=ratio,
        ignored_layers=structural.classifier_layers(model, shape),
    )
    built = time.perf_counter()
    pruner.step()
    done = time.perf_counter()
    return {"tp_ratio": ratio, "tp_step_seconds": done - built, "tp_total_seconds": done - start}


def add_commands(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks (speed belongs here, not in tests)")
    kinds = bench.add_subparsers(dest="bench", required=True)
    _add_speedup(kinds)
    _add_prune_time(kinds)
    from workbench import bench_dynamic, bench_models, bench_search  # import no torch at their top
    from workbench.deploy import cli as deploy_cli

    bench_models.add_command(kinds)
    bench_dynamic.add_command(kinds)
    bench_search.add_command(kinds)
    deploy_cli.add_sparse_command(kinds)


def _add_speedup(kinds) -> None:
    p = kinds.add_parser(
        "speedup", help="measured speedup of physical channel pruning vs FLOPs",
        description="Prune a randomly initialised model to a FLOPs reduction and time it against the dense model "
        "(and a masked twin) in alternating rounds, in each runtime asked for (one result per runtime); an "
        "unreachable target is refused with the maximum.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    p.add_argument("--model", default="resnet56", help="a name from workbench.models.MODELS")
    p.add_argument("--criterion", default="l1", help="a filter-ranking criterion (`workbench methods`)")
    p.add_argument("--flops-reduction", type=float, default=2.0, help="dense FLOPs / pruned FLOPs to reach (>= 1)")
    p.add_argument("--batch-size", type=int, default=64, help="images per timed forward pass")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of the timing (None: torch's current count)")
    p.add_argument("--round-to", type=int, default=8, help="keep channel counts multiples of this (0: off)")
    allocation = "uniform: every group loses the same fraction; global: one ranking over all groups"
    p.add_argument("--allocation", default="uniform", choices=ALLOCATIONS, help=allocation)
    p.add_argument("--no-fuse", action="store_true", help="do not fold batch norm into convolutions")
    p.add_argument("--nchw", action="store_true", help="time in NCHW instead of channels-last memory format")
    p.add_argument("--runtime", default="eager", help="comma-separated: eager, compile (torch.compile), onnxruntime")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians kept)")
    p.add_argument("--json", action="store_true", help="print one JSON object per runtime")

    def handler(a) -> int:
        from workbench import models
        from workbench.deploy.runtimes import check_runtimes

        models.MODELS.check(a.model)
        names = check_runtimes(a.runtime)
        options = {"round_to": a.round_to or None, "fuse_bn": not a.no_fuse, "channels_last": not a.nchw}
        for runtime in names:
            result = speedup(a.model, a.criterion, a.flops_reduction, a.batch_size, a.threads, allocation=a.allocation,
                             runtime=runtime, rounds=a.rounds, **options)  # fmt: skip
            print(json.dumps(result) if a.json else "\n".join(f"{k:>28}: {v}" for k, v in result.items()))
        return 0

    p.set_defaults(handler=handler)


def _add_prune_time(kinds) -> None:
    p = kinds.add_parser("prune-time", help="seconds to prune to a FLOPs target per criterion, vs Torch-Pruning",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--model", default="resnet56", help="a name from workbench.models.MODELS")
    p.add_argument("--criteria", default=None, help="comma-separated (None: every filter-ranking criterion)")
    p.add_argument("--flops-reduction", type=float, default=2.0, help="dense FLOPs / pruned FLOPs to reach")
    p.add_argument("--calibration-size", type=int, default=128, help="random images the criteria look at")
    p.add_argument("--allocation", default="uniform", choices=ALLOCATIONS, help="uniform or global")
    p.add_argument("--round-to", type=int, default=0, help="keep channel counts multiples of this (0: off)")
    p.add_argument("--tp-ratio", type=float, default=0.3, help="channel ratio of the Torch-Pruning reference step")
    p.add_argument("--seed", type=int, default=0, help="seed of the random model and images")
    p.add_argument("--json", action="store_true", help="print one JSON object per criterion and line")

    def handler(a) -> int:
        from workbench import models

        models.MODELS.check(a.model)
        criteria = a.criteria.split(",") if a.criteria else None
        options = {"allocation": a.allocation, "round_to": a.round_to or None, "tp_ratio": a.tp_ratio, "seed": a.seed}
        rows = prune_time(a.model, criteria, a.flops_reduction, a.calibration_size, **options)
        for row in rows:
            print(json.dumps(row) if a.json else _line(row))
        return 0

    p.set_defaults(handler=handler)


def _line(row: dict) -> str:
    return (
        f"{row['model']:>10} {row['criterion']:>14}: {row['seconds']:7.2f} s to {row['flops_reduction']:.3f}x FLOPs "
        f"(Torch-Pruning step {row['tp_step_seconds']:.2f} s, with its graph {row['tp_total_seconds']:.2f} s)"
    )
