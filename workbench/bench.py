"""`workbench bench speedup`: prune a model physically and measure what it buys on this CPU."""

from __future__ import annotations

import argparse
import copy
import json

import torch

from workbench import metrics, models, speed
from workbench.pruning import METHODS, structural
from workbench.pruning.masks import masked_like


def check_criterion(name: str) -> str:
    """`name` if it is a registered filter-ranking criterion, else a one-line error listing them."""
    if name not in METHODS or METHODS.info(name).get("family") != "filter-ranking":
        raise ValueError(f"unknown criterion {name!r}; known: {', '.join(METHODS.names(family='filter-ranking'))}")
    return name


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
) -> dict:
    """Prune a randomly initialised `model` to `flops_reduction` with `criterion`; time dense, pruned and masks."""
    factory = METHODS.get(check_criterion(criterion))
    shape = tuple(models.MODELS.info(model)["input_shape"])
    threads = threads or torch.get_num_threads()
    torch.manual_seed(seed)
    dense = models.build(model, 10, shape).eval()  # timed as users run it (option-A shortcuts as slicing)
    calibration = torch.randn(calibration_size, *shape)  # timing needs no trained weights or real images
    pruned = structural.make_traceable(copy.deepcopy(dense))
    structural.prune_structured(
        pruned,
        shape,
        lambda m: factory(m, calibration),
        structural.Target(flops_reduction=flops_reduction),
        allocation,
        round_to,
    )
    options = {"fuse_bn": fuse_bn, "channels_last": channels_last}
    report = speed.speed_report(dense, pruned, shape, batch_size, threads, **options)
    masked = masked_like(dense, pruned)  # timed with its zeros stored densely: what masks run in PyTorch
    twin = speed.compare_latency(dense, masked, shape, batch_size, threads, **options)
    return {
        "model": model,
        "criterion": criterion,
        "flops_reduction_target": flops_reduction,
        "allocation": allocation,
        "round_to": round_to,
        **report,
        "unstructured_nonzero_params": metrics.count_params(masked)["nonzero_params"],
        "unstructured_latency_ms": twin["latency_ms_pruned"],
        "unstructured_speedup": twin["speedup"],
    }


def add_commands(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks (speed belongs here, not in tests)")
    kinds = bench.add_subparsers(dest="bench", required=True)
    p = kinds.add_parser("speedup", help="measured speedup of physical channel pruning vs FLOPs")
    p.add_argument("--model", default="resnet56")
    p.add_argument("--criterion", default="l1")
    p.add_argument("--flops-reduction", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="default: torch's current thread count")
    p.add_argument("--round-to", type=int, default=8, help="keep channel counts multiples of this (0: off)")
    p.add_argument("--allocation", default="uniform", choices=structural.ALLOCATIONS)
    p.add_argument("--no-fuse", action="store_true", help="do not fold batch norm into convolutions")
    p.add_argument("--nchw", action="store_true", help="time in NCHW instead of channels-last memory format")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    def handler(a) -> int:
        models.MODELS.check(a.model)
        options = {"round_to": a.round_to or None, "fuse_bn": not a.no_fuse, "channels_last": not a.nchw}
        result = speedup(
            a.model, a.criterion, a.flops_reduction, a.batch_size, a.threads, allocation=a.allocation, **options
        )
        print(json.dumps(result) if a.json else "\n".join(f"{k:>28}: {v}" for k, v in result.items()))
        return 0

    p.set_defaults(handler=handler)
