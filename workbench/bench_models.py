"""`workbench bench models`: does the structural path prune every torchvision classifier plain Torch-Pruning prunes?

For each torchvision classification model (`torchvision.models.list_models(module=torchvision.models)`) up to
`--max-params` parameters (counted at 1000 classes), randomly initialised with 10 classes on the smallest input of
64, 96, 128, 160, 224, 299 pixels it runs on (in train mode too if it has auxiliary heads: Inception v3's need 299;
a ViT is built for that image size), two runs, each in a process of its own with a time limit:

- `tp`: plain Torch-Pruning, one `tp.pruner.MetaPruner` step at a fixed channel ratio (`--tp-ratio`, 0.3 by default;
  MagnitudeImportance(p=1), the classifier protected, nothing else configured); it succeeds if the step completes
  and the pruned model runs in eval mode;
- `workbench`: `structural.prune_to_target` with the `l1` criterion to `--flops-reduction` (uniform allocation,
  `--round-to`); it succeeds if the pruned model runs (also in train mode for models with auxiliary heads).

Seconds are those of the pruning alone (graph, scoring, search, removal), not of building the model or starting
the process. This module imports no torch at the top: the command line is built without it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

SIZES = (64, 96, 128, 160, 224, 299)
TOLERANCE = 0.02  # structural.TOLERANCE, repeated so that the command line imports no torch


def model_names(max_params: float, models: list[str] | None = None) -> list[tuple[str, int | None]]:
    """(name, parameters at 1000 classes) of torchvision's classifiers, or of `models`, up to `max_params`."""
    import warnings

    import torch
    import torchvision

    warnings.filterwarnings("ignore", category=FutureWarning)  # GoogLeNet's note on its default initialisation
    known = torchvision.models.list_models(module=torchvision.models)
    names = models or known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown torchvision classification model {unknown[0]!r}; known: {', '.join(known)}")
    rows = []
    for name in names:
        try:
            with torch.device("meta"):
                params = sum(p.numel() for p in torchvision.models.get_model(name, weights=None).parameters())
        except Exception:  # a builder that cannot run on the meta device: count on the CPU
            params = sum(p.numel() for p in torchvision.models.get_model(name, weights=None).parameters())
        if params <= max_params:
            rows.append((name, params))
    return rows


def _build(name: str, size: int):
    from workbench.models import zoo

    return zoo.build_torchvision(name, 10, (3, size, size)).eval()


def _runs(model, shape, train: bool) -> None:
    import torch

    with torch.no_grad():
        model.eval()
        model(torch.randn(1, *shape))
        if train:
            model.train()
            model(torch.randn(2, *shape))
            model.eval()


def input_size(name: str) -> int:
    """The smallest of SIZES on which the randomly initialised model runs (in train mode too, with auxiliary heads)."""
    from workbench.pruning import structural

    error = None
    for size in SIZES:
        try:
            model = _build(name, size)
            _runs(model, (3, size, size), structural.has_aux_outputs(model))
            return size
        except Exception as exc:  # too small for its pooling or its patches: try the next size
            error = exc
    raise ValueError(f"{name} runs on none of the sizes {SIZES}: {_one_line(error)}")


def _one_line(exc: BaseException | None) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if exc else "unknown error"
    return text[:200]


def run_one(name: str, tool: str, flops_reduction: float, round_to: int | None, tp_ratio: float) -> dict:
    """Prune torchvision's `name` with `tool` ("tp" or "workbench"); status, FLOPs reduction, seconds."""
    import warnings

    import torch

    from workbench import metrics
    from workbench.bench import tp_step
    from workbench.methods import METHODS
    from workbench.pruning import structural
    from workbench.targets import FlopsReduction

    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    try:
        size = input_size(name)
    except ValueError as exc:
        return {"model": name, "tool": tool, "status": "failed", "error": str(exc)[:200]}
    shape = (3, size, size)
    model = _build(name, size)
    dense = metrics.flop_count(model, shape)["flops"]
    row = {"model": name, "tool": tool, "input_size": size}
    try:
        if tool == "tp":
            row["seconds"] = tp_step(model, shape, tp_ratio)["tp_total_seconds"]
            train = False
        else:
            structural.check_supported(model, name)
            start = time.perf_counter()
            importance = METHODS.get("l1").criterion(model)
            structural.prune_to_target(model, shape, importance, FlopsReduction(flops_reduction), "uniform", round_to)
            row["seconds"] = time.perf_counter() - start
            train = structural.has_aux_outputs(model)
        _runs(model, shape, train)
    except Exception as exc:
        refused = isinstance(exc, ValueError) and str(exc).startswith("cannot prune")
        error = str(exc)[:200] if refused else _one_line(exc)
        return {**row, "status": "refused" if refused else "failed", "error": error}
    return {**row, "status": "ok", "flops_reduction": dense / metrics.flop_count(model, shape)["flops"]}


def run_in_process(name: str, tool: str, options: dict, timeout: float) -> dict:
    """run_one in a fresh Python process, killed after `timeout` seconds."""
    argv = [sys.executable, "-m", "workbench.bench_models", name, tool, json.dumps(options)]
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": name, "tool": tool, "status": "timeout", "error": f"killed after {timeout:g} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return {"model": name, "tool": tool, "status": "failed", "error": f"exit {done.returncode}: {tail}"}
    return {**json.loads(lines[-1]), "process_seconds": time.perf_counter() - start}


def benchmark(
    models: list[str] | None = None,
    max_params: float = 100e6,
    flops_reduction: float = 2.0,
    round_to: int | None = 8,
    tp_ratio: float = 0.3,
    timeout: float = 120.0,
    report=None,
) -> tuple[list[dict], dict]:
    """One row per model (both tools) and the totals; `report(row)` is called as each model finishes."""
    options = {"flops_reduction": flops_reduction, "round_to": round_to, "tp_ratio": tp_ratio}
    rows = []
    for name, params in model_names(max_params, models):
        tp = run_in_process(name, "tp", options, timeout)
        wb = run_in_process(name, "workbench", options, timeout)
        row = {"model": name, "params": params, "input_size": wb.get("input_size", tp.get("input_size")), "tp": tp,
               "workbench": wb, "target": {"flops_reduction": flops_reduction}}  # fmt: skip
        if wb["status"] == "ok":
            row["within_tolerance"] = abs(wb["flops_reduction"] / flops_reduction - 1) <= TOLERANCE
        if wb["status"] == "ok" and tp["status"] == "ok":
            row["seconds_over_tp"] = wb["seconds"] / tp["seconds"]
        rows.append(row)
        if report is not None:
            report(row)
    return rows, totals(rows, options)


def totals(rows: list[dict], options: dict) -> dict:
    tp_ok = {r["model"] for r in rows if r["tp"]["status"] == "ok"}
    wb_ok = {r["model"] for r in rows if r["workbench"]["status"] == "ok"}
    return {
        "models": len(rows),
        **options,
        "tp_ok": len(tp_ok),
        "workbench_ok": len(wb_ok),
        "workbench_refused": sum(r["workbench"]["status"] == "refused" for r in rows),
        "tp_only": sorted(tp_ok - wb_ok),
        "workbench_only": sorted(wb_ok - tp_ok),
        "within_tolerance": sum(bool(r.get("within_tolerance")) for r in rows),
        "over_3x_tp_time": sorted(r["model"] for r in rows if r.get("seconds_over_tp", 0) > 3),
        "tp_seconds": sum(r["tp"].get("seconds", 0) for r in rows),
        "workbench_seconds": sum(r["workbench"].get("seconds", 0) for r in rows),
    }


def _side(run: dict, width: int) -> str:
    if run["status"] == "ok":
        text = f"ok {run['flops_reduction']:6.3f}x {run['seconds']:6.2f} s"
    else:
        text = f"{run['status']}: {run.get('error', '')}"
    return f"{text[:width]:<{width}}"


def line(row: dict) -> str:
    ratio = f"{row['seconds_over_tp']:5.2f}x" if "seconds_over_tp" in row else "    -"
    hit = {True: "yes", False: "NO"}.get(row.get("within_tolerance"), "-")
    params = f"{row['params'] / 1e6:6.1f}M" if row.get("params") is not None else "      ?"
    return (
        f"{row['model']:<20} {row.get('input_size') or '-':>4} {params}  {_side(row['tp'], 30)}  "
        f"{_side(row['workbench'], 40)}  {hit:>6} {ratio}"
    )


def header(options: dict) -> str:
    return (
        f"{'model':<20} {'size':>4} {'params':>7}  {'torch-pruning ratio ' + str(options['tp_ratio']):<30}  "
        f"{'workbench l1 to ' + str(options['flops_reduction']) + 'x, round_to ' + str(options['round_to']):<40}  "
        f"{'in 2%':>6} {'time/tp':>6}"
    )


def add_command(kinds) -> None:
    p = kinds.add_parser(
        "models", help="prune every torchvision classifier: workbench vs plain Torch-Pruning",
        description=__doc__.split("\n\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    p.add_argument("--models", default=None, help="comma-separated torchvision builder names (None: all)")
    p.add_argument("--max-params", type=float, default=100e6, help="skip models with more parameters (1000 classes)")
    p.add_argument("--flops-reduction", type=float, default=2.0, help="the workbench's FLOPs target")
    p.add_argument("--round-to", type=int, default=8, help="keep channel counts multiples of this (0: off)")
    p.add_argument("--tp-ratio", type=float, default=0.3, help="channel ratio of the plain Torch-Pruning step")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds allowed to each model's process, per tool")
    p.add_argument("--json", action="store_true", help="one JSON object per model, then one with the totals")

    def handler(a) -> int:
        options = {"flops_reduction": a.flops_reduction, "round_to": a.round_to or None, "tp_ratio": a.tp_ratio}
        if not a.json:
            print(header(options), flush=True)
        report = (lambda row: print(json.dumps(row), flush=True)) if a.json else (lambda r: print(line(r), flush=True))
        models = a.models.split(",") if a.models else None
        _, total = benchmark(models, a.max_params, timeout=a.timeout, report=report, **options)
        print(json.dumps({"totals": total}) if a.json else "\n".join(f"{k:>20}: {v}" for k, v in total.items()))
        return 0

    p.set_defaults(handler=handler)


if __name__ == "__main__":  # the worker: python -m workbench.bench_models NAME TOOL OPTIONS_JSON
    print(json.dumps(run_one(sys.argv[1], sys.argv[2], **json.loads(sys.argv[3]))))
