"""`workbench export` and `workbench bench sparse` (their parsers import no torch; the commands import it when run)."""

from __future__ import annotations

import argparse
import json


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a finished run's model as ONNX or a torch.export program, outputs checked",
        description="Rebuild a run's model from the run cache (channel-pruned models as their smaller architecture, "
        "masks folded into the weights) and write it in a format that runs without the workbench: onnx (checked "
        "in ONNX Runtime) or torch (torch.export; torch.export.load(path).module() runs it). The exported model's "
        "logits on test inputs must equal the workbench's, else nothing is written.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    p.add_argument("run_id", help="a run id (load_records()['run_id'], or a record's file name)")
    p.add_argument("--format", default="onnx", choices=["onnx", "torch"], help="what to write")
    p.add_argument("--out", default=None, help="file to write (default: ./<run id>.onnx or .pt2)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    def handler(a) -> int:
        from workbench.deploy.export import export

        result = export(a.run_id, a.format, a.out)
        if a.json:
            print(json.dumps(result))
        else:
            print(f"wrote {result['path']}: {result['bytes']} bytes ({result['format']}; the dense model exports to "
                  f"{result['dense_bytes']}), logits equal to the workbench's on {result['inputs_checked']} test "
                  f"inputs (max |diff| {result['max_abs_diff']:.2g})")  # fmt: skip
        return 0

    p.set_defaults(handler=handler)


def add_sparse_command(kinds) -> None:
    p = kinds.add_parser(
        "sparse", help="dense vs sparse kernels (torch CSR, SciPy CSR) per layer shape and model; crossover sparsity",
        description="Time every conv/linear layer shape of the given registry models, and the whole models, dense "
        "(the masked weight, as PyTorch runs masks) against sparse CSR kernels at each sparsity and batch size, in "
        "alternating rounds; print one JSON row per measurement and one per crossover (the lowest sparsity from "
        "which the sparse kernel is faster at every higher sparsity measured).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    p.add_argument("--layers-of", default="mlp,small_cnn,resnet20", help="comma-separated registry models")
    p.add_argument("--models", default="mlp,small_cnn", help="whole models timed (comma-separated; '' for none)")
    p.add_argument("--sparsities", default="0.5,0.7,0.8,0.9,0.95,0.98,0.99", help="comma-separated, in [0, 1)")
    p.add_argument("--batch-sizes", default="1,64", help="comma-separated")
    p.add_argument("--backends", default="torch_csr,scipy_csr", help="comma-separated: torch_csr, scipy_csr")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the timing")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians kept)")
    p.add_argument("--json", action="store_true", help="JSON rows instead of the crossover table")

    def handler(a) -> int:
        from workbench import models
        from workbench.deploy import sparse

        names = [n for n in a.layers_of.split(",") if n]
        whole = [n for n in a.models.split(",") if n]
        for name in names + whole:
            models.MODELS.check(name)
        rows = sparse.benchmark_rows(
            sparse.layer_cases(names), whole, [float(v) for v in a.sparsities.split(",")],
            [int(v) for v in a.batch_sizes.split(",")], a.backends.split(","), a.threads, a.rounds,
        )  # fmt: skip
        found = sparse.crossovers(rows)
        if a.json:
            for row in rows + [{"crossover_of": r["item"], **r} for r in found]:
                print(json.dumps(row))
            return 0
        for r in found:
            at = "never" if r["crossover"] is None else f"from {r['crossover']:g}"
            print(f"{r['item']:<58} batch {r['batch_size']:>3} {r['backend']:>9}: sparse faster {at} "
                  f"(best {r['best_speedup']:.2f}x at {r['at_sparsity']:g})")  # fmt: skip
        return 0

    p.set_defaults(handler=handler)
