"""Models by registry: `MODELS.names('resnet*')`, `build(name, num_classes, input_shape)`."""

from __future__ import annotations

import torch.nn as nn

from workbench.models import cifar_resnet, small, vgg, zoo  # noqa: F401  (register the models)
from workbench.models.registry import MODELS

__all__ = ["MODELS", "build"]


def build(name: str, num_classes: int = 10, input_shape: tuple[int, ...] = (3, 32, 32), **options) -> nn.Module:
    """A freshly initialised registered model for `num_classes` classes and inputs of `input_shape`.

    `name` is a registered name or `torchvision:NAME` for any torchvision classification builder (zoo.py).

    `options` go to the factory, e.g. `weights_file=` for a torchvision checkpoint the user has locally.
    """
    return MODELS.get(name)(num_classes=num_classes, input_shape=tuple(input_shape), **options)
