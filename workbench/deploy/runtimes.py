"""Where pruned models run on a CPU: eager PyTorch, torch.compile and ONNX Runtime, each behind one callable.

`prepare(model, runtime, example, threads)` returns a `Prepared`: `run(x) -> logits` (a torch tensor) and the
seconds its set-up took (folding batch norm, compiling, exporting and building the session), kept apart from the
latency. Every runtime starts from `speed.inference_ready` (masks folded, batch norm folded into convolutions), so
they run the same network; eager and compile in channels-last memory format, ONNX Runtime on its own layout.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from workbench import checks, speed

RUNTIMES = ("eager", "compile", "onnxruntime")


@dataclass
class Prepared:
    """A model ready to time: `run(x)` returns the logits of a batch as a torch tensor."""

    runtime: str
    run: Callable[[torch.Tensor], torch.Tensor]
    setup_seconds: float
    channels_last: bool


def check_runtimes(names) -> list[str]:
    """`names` (a list, or a comma-separated string) if every one is known, else a one-line error naming them."""
    names = names.split(",") if isinstance(names, str) else list(names)
    for name in names:
        checks.choice("runtime", name, RUNTIMES)
    return names


def prepare(model: nn.Module, runtime: str, example: torch.Tensor, threads: int = 1, fuse_bn: bool = True,
            channels_last: bool = True) -> Prepared:  # fmt: skip
    """`model` made ready for `runtime`, with the set-up time measured (compile and ONNX Runtime: one warm-up call
    included). `channels_last` applies to eager and compile; ONNX Runtime chooses its own layout."""
    checks.choice("runtime", runtime, RUNTIMES)
    started = time.perf_counter()
    if runtime == "onnxruntime":
        ready = speed.inference_ready(model, fuse_bn=fuse_bn, channels_last=False)
        run = onnx_session(ready, example, threads)
        run(example)
        return Prepared(runtime, run, time.perf_counter() - started, channels_last=False)
    ready = speed.inference_ready(model, fuse_bn=fuse_bn, channels_last=channels_last)
    if runtime == "compile":
        compiled = torch.compile(ready, dynamic=False)
        torch.set_num_threads(threads)
        with torch.no_grad():
            compiled(as_layout(example, channels_last))

        def run(x):
            with torch.no_grad():
                return compiled(x)

        return Prepared(runtime, run, time.perf_counter() - started, channels_last)

    def eager(x):
        with torch.no_grad():
            return ready(x)

    return Prepared(runtime, eager, time.perf_counter() - started, channels_last)


def as_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """`x` in channels-last memory format when asked and 4-D, else as is."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def onnx_bytes(model: nn.Module, example: torch.Tensor, dynamic_batch: bool = False) -> bytes:
    """`model` exported with torch.onnx.export (the dynamo exporter) for inputs shaped like `example` (any batch size
    with `dynamic_batch`; a fixed shape lets ONNX Runtime optimise more, which the timing uses)."""
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
    program = torch.onnx.export(model, (example,), dynamo=True, verbose=False, input_names=["input"],
                                output_names=["logits"], dynamic_shapes=shapes)  # fmt: skip
    buffer = io.BytesIO()
    program.save(buffer)
    return buffer.getvalue()


def session(model_bytes: bytes, threads: int):
    """An ONNX Runtime CPU session with `threads` intra-op threads, one inter-op thread, every graph optimisation."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def onnx_session(model: nn.Module, example: torch.Tensor, threads: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """`run(x)` of `model` exported to ONNX and run by ONNX Runtime."""
    sess = session(onnx_bytes(model, example), threads)
    name = sess.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(sess.run(None, {name: x.detach().contiguous().numpy()})[0])

    return run
