"""`workbench export RUN_ID --format onnx|torch`: a finished run's model as a file that runs without the workbench.

The model is rebuilt from the run cache (`.cache/workbench/runs/<run id>.pt`, with the dense run it came from; a
model missing there, as on a fresh clone that has only the records, is computed again first, exactly as the run did):
channel-pruned models as their real, smaller architecture, masked models with the masks folded into the weights,
gated models in their masked execution. `torch` writes a torch.export program (`torch.export.load(path).module()`
runs it); `onnx` an ONNX file (the dynamo exporter), checked in ONNX Runtime. Both take any batch size. Either way the
exported model's outputs on test inputs (a batch of 8, and one input alone) are compared with the workbench's before
anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from workbench import checks, paths
from workbench.records import RunRecord, read_record

FORMATS = {"onnx": "onnx", "torch": "pt2"}
TOLERANCE = 1e-4  # largest |difference| of logits, relative to the largest |logit|


def find_record(run_id: str) -> RunRecord:
    """The record of `run_id` in any notebook's records, or a one-line error."""
    paths.safe_name("run id", run_id)
    found = sorted(paths.records_root().glob(f"*/{run_id}.json"))
    if not found:
        raise checks.ConfigError(
            f"no record of run {run_id!r} under {paths.records_root()}; accepted: a run id of load_records()['run_id']"
        )
    return read_record(found[0].parent.name, run_id)


def run_model(record: RunRecord) -> tuple[nn.Module, torch.Tensor]:
    """The run's finished model (eval mode, masks folded) and a batch of its test inputs."""
    from workbench.gating import gated_units, set_execution
    from workbench.pruning.masks import make_permanent
    from workbench.runner import pipeline, store
    from workbench.runner.recipe import Recipe

    recipe = Recipe.from_dict(record.recipe)
    saved = store.run_file(record.run_id)
    if not saved.exists():  # a fresh clone has the records, not the run cache: compute the model again, exactly
        if record.role != "main":
            raise FileNotFoundError(f"run {record.run_id} is a {record.role} control; its model is not kept")
        with torch.enable_grad():
            pipeline.run_recipe(recipe, record.notebook, models=True)
    bundle = store.bundle_of(recipe)
    dense = store.train_dense(recipe, bundle).model
    model, _ = store.restore_model(dense, saved, bundle.input_shape)
    model = make_permanent(model).eval()
    if gated_units(model):
        set_execution(model, "masked")
    return model, bundle.test.tensors[0][:8]


def exported_bytes(model: nn.Module, x: torch.Tensor, fmt: str) -> bytes:
    """`model` exported in `fmt` for inputs shaped like `x`, as bytes."""
    import io

    if fmt == "onnx":
        from workbench.deploy.runtimes import onnx_bytes

        return onnx_bytes(model, x, dynamic_batch=True)
    buffer = io.BytesIO()
    shapes = ({0: torch.export.Dim("batch", min=1)},)
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=shapes), buffer)
    return buffer.getvalue()


def run_exported(blob: bytes, fmt: str, x: torch.Tensor) -> torch.Tensor:
    """Logits of the exported model on `x`, run the way a user would (ONNX Runtime, torch.export.load)."""
    import io

    if fmt == "onnx":
        from workbench.deploy.runtimes import session

        sess = session(blob, threads=1)
        return torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    return torch.export.load(io.BytesIO(blob)).module()(x)


def export(run_id: str, fmt: str = "onnx", out: str | Path | None = None) -> dict:
    """Write run `run_id`'s model in `fmt` to `out` (default ./<run id>.<onnx|pt2>) after checking its outputs;
    returns the path, sizes (this export and the same export of the dense model) and the largest difference."""
    checks.choice("format", fmt, FORMATS)
    record = find_record(run_id)
    model, x = run_model(record)
    from workbench.runner import store
    from workbench.runner.recipe import Recipe

    recipe = Recipe.from_dict(record.recipe)
    dense = store.train_dense(recipe, store.bundle_of(recipe)).model.eval()
    blob = exported_bytes(model, x, fmt)
    with torch.no_grad():
        expected = model(x)
        got = run_exported(blob, fmt, x)
        one = run_exported(blob, fmt, x[:1])  # any batch size runs
    diff = max(float((got - expected).abs().max()), float((one - expected[:1]).abs().max()))
    scale = float(expected.abs().max()) or 1.0
    if diff > TOLERANCE * scale:
        raise RuntimeError(f"the exported model's logits differ from the workbench's by {diff:.3g} (> {TOLERANCE:g} "
                           f"x {scale:.3g}); nothing written")  # fmt: skip
    path = Path(out) if out else Path.cwd() / f"{run_id}.{FORMATS[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)
    return {"run_id": run_id, "notebook": record.notebook, "method": record.method, "format": fmt,
            "path": str(path), "bytes": len(blob), "dense_bytes": len(exported_bytes(dense, x, fmt)),
            "max_abs_diff": diff, "inputs_checked": len(x)}  # fmt: skip
