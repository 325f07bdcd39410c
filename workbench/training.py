"""Seeded, resumable SGD training by global step, with callbacks and named checkpoints.

Everything a step does is a function of (seed, step): the learning rate (`lr_at`), which examples form the batch
(a per-epoch permutation seeded from (seed, epoch)) and torch's global generator (reseeded from (seed, step)
before each batch is fetched, so dropout and torchvision augmentation replay identically). Training 0 -> k, then
k -> N from the k-checkpoint and its optimizer state, therefore equals training 0 -> N bit for bit (on one
device with a fixed thread count, see `seed_everything`). Nothing here knows about specific pruning methods:
they plug in through `Callback`.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import random
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset, TensorDataset, default_collate
from tqdm import tqdm  # the plain bar: tqdm.auto warns 'IProgress not found' in kernels without ipywidgets

__all__ = [
    "Callback",
    "Checkpoint",
    "TrainState",
    "load_checkpoint",
    "lr_at",
    "save_checkpoint",
    "seed_everything",
    "steps_per_epoch",
    "train",
]


def seed_everything(seed: int, threads: int = 1) -> None:
    """Seed python, numpy and torch, fix torch's thread count and ask for deterministic kernels.

    Args:
        seed: seed of python's, numpy's and torch's global generators.
        threads: torch intra-op threads; results are reproducible for a fixed count.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


class Callback:
    """Hooks into each training step; every method is a no-op here, override the ones you need.

    Per step, for each callback in order: `on_loss`, then (after backward) `after_backward`, then (after the
    optimizer step) `after_step`. `step` is the global step being run (0-based).
    """

    def on_loss(self, step: int, model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
        """Return the loss to minimise, e.g. `loss + lam * l1(bn scales)`; default: `loss` unchanged."""
        return loss

    def after_backward(self, step: int, model: nn.Module) -> None:
        """Edit gradients before the optimizer step (e.g. subgradient of a regulariser, freezing)."""

    def after_step(self, step: int, model: nn.Module) -> None:
        """Act on the updated weights (e.g. tighten a pruning mask on a schedule, re-apply masks)."""


@dataclass(frozen=True)
class Checkpoint:
    """The state after `step` steps: model weights and buffers (CPU copies) and the optimizer state."""

    name: str
    step: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None


@dataclass
class TrainState:
    """Where a `train` call ended: the step reached, the optimizer state to resume from, named checkpoints."""

    step: int
    optimizer_state: dict[str, Any]
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)


def lr_at(step: int, total_steps: int, base_lr: float) -> float:
    """The learning rate of global `step`: cosine annealing from `base_lr` at step 0 to 0 at `total_steps`.

    Args:
        step: global step in [0, total_steps].
        total_steps: length of the whole schedule (>= 1).
        base_lr: learning rate at step 0.
    Returns:
        base_lr * (1 + cos(pi * step / total_steps)) / 2.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
    if not 0 <= step <= total_steps:
        raise ValueError(f"step must be in [0, {total_steps}], got {step!r}")
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def steps_per_epoch(dataset: Dataset, batch_size: int) -> int:
    """Batches in one pass over `dataset`: ceil(N / batch_size) (the last, partial batch is kept)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    n = len(dataset)
    if n < 1:
        raise ValueError("cannot train on an empty data set (0 examples)")
    return math.ceil(n / batch_size)


def _derived_seed(*parts: object) -> int:
    """A stable 63-bit seed from plain values (independent of python's hash randomisation)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(_derived_seed("order", seed, epoch))
    return torch.randperm(n, generator=generator)


def _fetch(dataset: Dataset, index: torch.Tensor) -> Sequence[torch.Tensor]:
    if isinstance(dataset, TensorDataset):
        return [t[index] for t in dataset.tensors]
    return default_collate([dataset[int(i)] for i in index])


def _cpu_copy(obj: Any) -> Any:
    """A deep copy with every tensor detached, cloned and moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, Mapping):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return copy.deepcopy(obj)


def _check_optimizer_state(state: Mapping[str, Any], params: list[nn.Parameter]) -> None:
    groups = state.get("param_groups", [])
    expected = sum(len(g["params"]) for g in groups)
    if len(groups) != 1 or expected != len(params):
        raise ValueError(
            f"optimizer_state holds {expected} parameters in {len(groups)} group(s); the model has {len(params)} "
            "trainable parameters in 1 group (was the model pruned or changed since the state was saved?)"
        )
    for i, p in enumerate(params):
        buf = state.get("state", {}).get(i, {}).get("momentum_buffer")
        if buf is not None and buf.shape != p.shape:
            raise ValueError(
                f"optimizer_state momentum buffer {i} has shape {tuple(buf.shape)}, parameter {i} has "
                f"{tuple(p.shape)} (was the model pruned or changed since the state was saved?)"
            )


def train(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    total_steps: int,
    seed: int,
    start_step: int = 0,
    end_step: int | None = None,
    callbacks: Iterable[Callback] = (),
    save_at: Mapping[str, int] | None = None,
    optimizer_state: Mapping[str, Any] | None = None,
    desc: str = "train",
) -> TrainState:
    """Run global steps [start_step, end_step) of SGD on cross-entropy; resumable bit for bit.

    Plain SGD (momentum, weight decay) on the parameters that require grad, learning rate `lr_at(step, ...)`.
    Step s uses batch s % steps_per_epoch of epoch s // steps_per_epoch's permutation, seeded from (seed, epoch).
    Before each batch is fetched torch's global generator is reseeded from (seed, step), so dropout and data
    augmentation depend only on (seed, step); as a side effect the global generator's state after the call is a
    function of (seed, last step). Masks of torch.nn.utils.prune keep working: the optimizer updates
    `weight_orig` and the forward pre-hook recomputes `weight = weight_orig * weight_mask`. The model's
    train/eval mode is restored afterwards.

    Args:
        model: the network, trained in place (batches are moved to its device).
        dataset: training examples (x, y); TensorDatasets are sliced directly, others item by item.
        batch_size, lr, momentum, weight_decay: SGD settings; `lr` is the rate at step 0.
        total_steps: length of the learning-rate schedule (the whole run, not this call).
        seed: seed of data order and of in-model randomness.
        start_step: first global step to run; resuming needs the `optimizer_state` saved at that step.
        end_step: step to stop before (default `total_steps`); 0 <= start_step <= end_step <= total_steps.
        callbacks: `Callback`s, called in order each step.
        save_at: {name: step}: keep a `Checkpoint` of the state after `step` steps, start_step <= step <= end_step.
        optimizer_state: an optimizer state to resume from (`TrainState.optimizer_state` or a checkpoint's);
            its momentum and weight decay are replaced by the arguments; None starts with empty momentum.
        desc: label of the progress bar (hidden when the environment sets WORKBENCH_PROGRESS=0).
    Returns:
        TrainState with the step reached, the optimizer state (CPU copy) and the checkpoints by name.
    """
    end_step = total_steps if end_step is None else end_step
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
    if not 0 <= start_step <= end_step <= total_steps:
        raise ValueError(
            f"need 0 <= start_step <= end_step <= total_steps, got start_step={start_step!r}, "
            f"end_step={end_step!r}, total_steps={total_steps!r}"
        )
    save_at = dict(save_at or {})
    for name, s in save_at.items():
        if not start_step <= s <= end_step:
            raise ValueError(f"save_at[{name!r}] = {s!r} is outside this call's steps [{start_step}, {end_step}]")
    callbacks = list(callbacks)
    per_epoch = steps_per_epoch(dataset, batch_size)
    n = len(dataset)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if optimizer_state is not None:
        _check_optimizer_state(optimizer_state, params)
        optimizer.load_state_dict(copy.deepcopy(dict(optimizer_state)))
        for group in optimizer.param_groups:  # the arguments win over the saved hyperparameters
            group.update(momentum=momentum, weight_decay=weight_decay, dampening=0, nesterov=False)
    device = next((p.device for p in params), torch.device("cpu"))
    loss_fn = nn.CrossEntropyLoss()
    checkpoints: dict[str, Checkpoint] = {}

    def keep(step: int) -> None:
        for name, s in save_at.items():
            if s == step:
                checkpoints[name] = Checkpoint(
                    name, step, _cpu_copy(model.state_dict()), _cpu_copy(optimizer.state_dict())
                )

    # torch.manual_seed also seeds every accelerator's generators: 150 us a call here, the CPU generator's own 1 us
    reseed = torch.default_generator.manual_seed if device.type == "cpu" else torch.manual_seed
    was_training = model.training
    model.train()
    bar = _progress_bar(end_step - start_step, desc)
    order, order_epoch = None, None
    try:
        for step in range(start_step, end_step):
            keep(step)
            epoch, within = divmod(step, per_epoch)
            if epoch != order_epoch:
                order, order_epoch = _epoch_order(seed, epoch, n), epoch
            reseed(_derived_seed("step", seed, step))  # dropout / augmentation depend on (seed, step)
            x, y = _fetch(dataset, order[within * batch_size : (within + 1) * batch_size])
            x, y = x.to(device), y.to(device)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total_steps, lr)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            for cb in callbacks:
                loss = cb.on_loss(step, model, loss)
            loss.backward()
            for cb in callbacks:
                cb.after_backward(step, model)
            optimizer.step()
            for cb in callbacks:
                cb.after_step(step, model)
            bar.update()
        keep(end_step)
    finally:
        bar.close()
        model.train(was_training)
    return TrainState(end_step, _cpu_copy(optimizer.state_dict()), checkpoints)


def _progress_bar(total: int, desc: str) -> tqdm:
    """A transient training bar on stderr, off when WORKBENCH_PROGRESS=0 (`workbench run` and tests set it)."""
    off = os.environ.get("WORKBENCH_PROGRESS") == "0"
    return tqdm(total=total, desc=desc, leave=False, mininterval=0.5, disable=off)


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` to `path` atomically (a temp file in the same folder, then os.replace).

    Args:
        path: target file; its folder is created if missing.
        checkpoint: what to write; `load_checkpoint` reads it back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": checkpoint.name,
        "step": checkpoint.step,
        "model_state": checkpoint.model_state,
        "optimizer_state": checkpoint.optimizer_state,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)  # the file appears whole or not at all
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` (tensors on the CPU, `weights_only=True`).

    Args:
        path: the file.
    Returns:
        The Checkpoint.
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    return Checkpoint(payload["name"], payload["step"], payload["model_state"], payload["optimizer_state"])
