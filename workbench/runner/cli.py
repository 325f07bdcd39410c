"""`workbench sweep` (a grid from the command line, with progress) and `workbench methods` (what can be run)."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a grid of methods x targets x seeds through the pipeline")
    p.add_argument("notebook", help="the tag records are filed under (reports/records/NOTEBOOK/)")
    p.add_argument("--methods", nargs="+", required=True)
    p.add_argument("--targets", required=True, help="KIND=V1,V2,... e.g. sparsity=0.5,0.9 or flops_reduction=2,3")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--executor", default="serial", help="serial, local (Dask LocalCluster) or tcp://scheduler:8786")
    p.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: cores // threads)")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a flat recipe parameter, e.g. -p epochs 5 -p controls '[\"random_mask\"]'")  # fmt: skip
    p.add_argument("--hparam", nargs=2, action="append", default=[], metavar=("METHOD.NAME", "VALUE"),
                   help="e.g. --hparam thinet.samples_per_image 5 (METHOD '*': every method that has it)")  # fmt: skip
    p.set_defaults(handler=run_sweep)

    m = sub.add_parser("methods", help="list the registered pruning methods, their targets and hyperparameters")
    m.add_argument("--family", default=None)
    m.set_defaults(handler=list_methods)


def run_sweep(a) -> int:
    from workbench.batch import parse_value
    from workbench.runner import sweep

    kind, _, values = a.targets.partition("=")
    if not values:
        raise ValueError(f"--targets must look like KIND=V1,V2, got {a.targets!r}")
    hparams: dict[str, dict] = {}
    for key, value in a.hparam:
        method, _, name = key.partition(".")
        hparams.setdefault(method, {})[name] = parse_value(value)
    params = {name: parse_value(value) for name, value in a.param}
    targets = [float(v) for v in values.split(",")]
    result = sweep(a.notebook, a.methods, targets, a.seeds, target_kind=kind, hparams=hparams,
                   executor=a.executor, workers=a.workers, **params)  # fmt: skip
    shown = ["method", "role", "level", "seed", "target_kind", "target_value", "top1", "dense_top1", "sparsity",
             "flops_reduction", "run_id"]  # fmt: skip
    print(result.results[shown].to_string(index=False))
    return 0


def list_methods(a) -> int:
    from workbench.methods import METHODS

    for name in METHODS.names(**({"family": a.family} if a.family else {})):
        info, method = METHODS.info(name), METHODS.get(name)
        print(f"{name}  [{info['family']}, {info['granularity']}; targets: {', '.join(info['targets'])}; "
              f"cite: {info['cite']}]\n    {info['summary']}")  # fmt: skip
        for field, text in method.Hparams.help().items():
            print(f"    - {field}: {text}")
    return 0
