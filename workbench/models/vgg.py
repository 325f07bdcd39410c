"""VGG-16 with batch norm, CIFAR variant (one linear classifier on 512 features, as in Network Slimming)."""

from __future__ import annotations

import torch.nn as nn

from workbench.models.registry import MODELS

VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


class CifarVGG(nn.Module):
    def __init__(self, cfg=VGG16_CFG, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        layers, channels = [], in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [
                    nn.Conv2d(channels, v, 3, padding=1, bias=False),
                    nn.BatchNorm2d(v),
                    nn.ReLU(inplace=True),
                ]
                channels = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@MODELS.register("vgg16_cifar", kind="vgg", input_shape=(3, 32, 32))
def vgg16_cifar(num_classes: int = 10, input_shape=(3, 32, 32)) -> nn.Module:
    return CifarVGG(VGG16_CFG, num_classes, input_shape[0])
