"""CIFAR-style ResNet-20/32/56/110 (He et al., 2016) with the paper's option-A shortcuts."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from workbench.models.registry import MODELS


class PadShortcut(nn.Module):
    """Option A: subsample by `stride` and zero-pad the new channels (no parameters)."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, planes - in_planes

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        needs_shortcut = stride != 1 or in_planes != planes
        self.shortcut = PadShortcut(in_planes, planes, stride) if needs_shortcut else nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Three stages of 16/32/64 channels with n basic blocks each: depth = 6n + 2."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def _register(depth: int) -> None:
    @MODELS.register(f"resnet{depth}", kind="cifar-resnet", input_shape=(3, 32, 32))
    def factory(num_classes: int = 10, input_shape=(3, 32, 32)) -> nn.Module:
        return CifarResNet(depth, num_classes, input_shape[0])


for _depth in (20, 32, 56, 110):
    _register(_depth)
