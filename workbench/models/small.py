"""Small models for the embedded data: a 2-D CNN for digits, a 1-D CNN and an MLP for MNIST-1D."""

from __future__ import annotations

import math

import torch.nn as nn

from workbench.models.registry import MODELS


@MODELS.register("small_cnn", kind="small", input_shape=(1, 8, 8))
def small_cnn(num_classes: int = 10, input_shape=(1, 8, 8)) -> nn.Module:
    """Three 3x3 conv layers (32, 64, 64 channels) with batch norm, one pooling, a linear classifier."""
    c, h, w = input_shape
    return nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * (h // 2) * (w // 2), num_classes),
    )  # fmt: skip


@MODELS.register("cnn1d", kind="small", input_shape=(1, 40))
def cnn1d(num_classes: int = 10, input_shape=(1, 40)) -> nn.Module:
    """Three strided 1-D conv layers (32, 64, 64 channels) and a linear classifier."""
    c, length = input_shape
    for _ in range(3):
        length = math.floor((length + 2 - 3) / 2) + 1
    return nn.Sequential(
        nn.Conv1d(c, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm1d(32), nn.ReLU(),
        nn.Conv1d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm1d(64), nn.ReLU(),
        nn.Conv1d(64, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm1d(64), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * length, num_classes),
    )  # fmt: skip


@MODELS.register("mlp", kind="small", input_shape=(1, 40))
def mlp(num_classes: int = 10, input_shape=(1, 40)) -> nn.Module:
    """Two hidden layers of 256 ReLU units on the flattened input."""
    features = math.prod(input_shape)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(features, 256),
        nn.ReLU(),
        nn.Linear(256, 256),
        nn.ReLU(),
        nn.Linear(256, num_classes),
    )
