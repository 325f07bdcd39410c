"""torchvision models, randomly initialised offline; pretrained weights only from a local file."""

from __future__ import annotations

import torch
import torch.nn as nn

from workbench.models.registry import MODELS

ARCHITECTURES = ("resnet18", "resnet50", "vgg16", "mobilenet_v2")


def _register(arch: str) -> None:
    @MODELS.register(arch, kind="torchvision", input_shape=(3, 224, 224))
    def factory(num_classes: int = 1000, input_shape=(3, 224, 224), weights_file: str | None = None) -> nn.Module:
        import torchvision

        model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
        if weights_file is not None:  # e.g. torchvision's checkpoint that the user downloaded themselves
            model.load_state_dict(torch.load(weights_file, map_location="cpu", weights_only=True))
        return model


for _arch in ARCHITECTURES:
    _register(_arch)
