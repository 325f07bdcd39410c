"""Seeded, deterministic CPU training and fine-tuning with tqdm progress; cached dense baselines."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from workbench import data as wdata
from workbench import metrics, models, paths
from workbench.config import RunConfig


def seed_everything(seed: int, threads: int = 1) -> None:
    """Seed python, numpy and torch, fix the thread count and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def train(
    model: nn.Module,
    loader,
    epochs: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    desc: str = "train",
    after_step=None,
) -> nn.Module:
    """SGD with momentum and a cosine learning rate over `epochs`; masks stay applied throughout.

    `after_step(step, total_steps)` is called after every optimiser step (gradual pruning hooks in here).
    """
    if epochs == 0:
        return model
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    total = epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    step = 0
    bar = tqdm(total=total, desc=desc, leave=False, disable=os.environ.get("WORKBENCH_PROGRESS") == "0")
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update()
            if after_step is not None:
                after_step(step, total)
    bar.close()
    return model


def build_for(config: RunConfig, bundle: wdata.DataBundle) -> nn.Module:
    """A fresh model for `config`, initialised from the run seed."""
    torch.manual_seed(config.seed)
    return models.build(config.model.name, bundle.num_classes, bundle.input_shape)


def dense_baseline(config: RunConfig, bundle: wdata.DataBundle) -> tuple[nn.Module, dict]:
    """The trained dense model for `config` and its metrics, from the cache when it was trained before.

    The cache key hashes data, model, training settings and seed (not the pruning settings).
    """
    folder = paths.cache_dir() / "dense" / config.dense_key()
    weights, info_file = folder / "model.pt", folder / "info.json"
    model = build_for(config, bundle)
    if weights.exists() and info_file.exists():
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return model, json.loads(info_file.read_text())
    seed_everything(config.seed, config.train.threads)
    model = build_for(config, bundle)
    t = config.train
    train_loader = wdata.loader(bundle.train, config.data.batch_size, shuffle=True, seed=config.seed)
    train(model, train_loader, t.epochs, t.lr, t.momentum, t.weight_decay, desc=f"dense seed {config.seed}")
    info = {
        "top1": metrics.top1(model, wdata.loader(bundle.test, 256, shuffle=False)),
        "key": config.dense_key(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "model.pt.tmp"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, weights)  # the weights appear whole or not at all
    info_file.write_text(json.dumps(info))
    return model, info
