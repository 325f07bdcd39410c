"""Where a model can be gated, and inserting gates there (in place).

A site is a convolution (groups 1) followed by its batch norm (optional) and a ReLU, whose output channels feed
exactly one layer: the next convolution of the same nn.Sequential (through pooling or dropout), a Linear after
Flatten, or the second convolution of a ResNet basic block. Channels that run into a residual sum are never gated
(every consumer of such a channel would have to skip it too), as in FBS and DGNet.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from workbench import checks
from workbench.gating.units import EXECUTIONS, CompactInput, FBSConv, GatedConv, GumbelGateConv

GATE_KINDS = ("fbs", "dgnet")
CHANNELWISE = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
               nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Identity)  # fmt: skip


@dataclass(frozen=True)
class Site:
    """Attribute names, inside `container`, of a gateable convolution, its norm and ReLU (None: none or
    functional), and the one layer reading its output (`per_channel` inputs per channel for a Linear)."""

    container: nn.Module
    conv: str
    norm: str | None
    act: str | None
    consumer: str
    per_channel: int = 1


def _plain_conv(module: nn.Module) -> bool:
    return isinstance(module, (nn.Conv1d, nn.Conv2d)) and module.groups == 1


def _basic_block_types() -> tuple[type, ...]:
    from torchvision.models.resnet import BasicBlock as TorchvisionBlock

    from workbench.models.cifar_resnet import BasicBlock

    return BasicBlock, TorchvisionBlock


def find_sites(model: nn.Module) -> list[Site]:
    """Every gateable convolution of `model`, in module order."""
    found = []
    blocks = _basic_block_types()
    for container in model.modules():
        if isinstance(container, blocks) and _plain_conv(container.conv1):
            found.append(Site(container, "conv1", "bn1", None, "conv2"))
        elif isinstance(container, nn.Sequential):
            found += _sequential_sites(container)
    return found


def _sequential_sites(seq: nn.Sequential) -> list[Site]:
    items = list(seq.named_children())
    found = []
    for i, (name, conv) in enumerate(items):
        if not _plain_conv(conv):
            continue
        j, norm = i + 1, None
        if j < len(items) and isinstance(items[j][1], nn.modules.batchnorm._BatchNorm):
            norm, j = items[j][0], j + 1
        if not (j < len(items) and isinstance(items[j][1], nn.ReLU)):
            continue
        act, j = items[j][0], j + 1
        while j < len(items) and isinstance(items[j][1], CHANNELWISE):
            j += 1
        if j < len(items) and _plain_conv(items[j][1]) and items[j][1].in_channels == conv.out_channels:
            found.append(Site(seq, name, norm, act, items[j][0]))
        elif (j + 1 < len(items) and isinstance(items[j][1], nn.Flatten) and isinstance(items[j + 1][1], nn.Linear)
              and items[j + 1][1].in_features % conv.out_channels == 0):  # fmt: skip
            found.append(Site(seq, name, norm, act, items[j + 1][0], items[j + 1][1].in_features // conv.out_channels))
    return found


def check_gateable(model: nn.Module, method: str) -> None:
    """A one-line ConfigError if `model` has no convolution that `method` could gate."""
    if not find_sites(model):
        raise checks.ConfigError(
            f"method {method!r} gates convolutions and the model has no gateable convolution (a convolution with "
            f"ReLU, optionally batch norm, whose channels feed one layer); accepted: models with such layers, e.g. "
            f"small_cnn, cnn1d, vgg16_cifar, resnet20"
        )


def _unit(kind: str, conv, bn, density: float | None, options: dict) -> GatedConv:
    if kind == "fbs":
        return FBSConv(conv, bn, density, **options)
    return GumbelGateConv(conv, bn, **options)


def insert_gates(model: nn.Module, kind: str, density: float | None = None, **options) -> nn.Module:
    """Gate every site of `model` in place with `kind` ("fbs": winner-take-all at `density`, `options` start;
    "dgnet": Gumbel gates, `options` reduction, temperature, bias); returns `model`, which remembers how
    (`gate_spec`)."""
    checks.choice("gate kind", kind, GATE_KINDS)
    if kind == "fbs":
        checks.number("gate density", density, 0.0, 1.0, open_low=True)
    check_gateable(model, kind)
    found = find_sites(model)
    units = {}
    for site in found:
        norm = getattr(site.container, site.norm) if site.norm else None
        conv = getattr(site.container, site.conv)
        unit = _unit(kind, conv, norm, density, options).train(conv.training)  # new modules follow the model's mode
        setattr(site.container, site.conv, unit)
        for name in (site.norm, site.act):
            if name:
                setattr(site.container, name, nn.Identity())
        units[(id(site.container), site.conv)] = unit
    for site in found:
        unit = units[(id(site.container), site.conv)]
        consumer = units.get((id(site.container), site.consumer))
        if consumer is not None:
            consumer.set_producer(unit)
        else:
            layer = getattr(site.container, site.consumer)
            setattr(site.container, site.consumer, CompactInput(layer, unit, site.per_channel).train(layer.training))
    model.gate_spec = {"kind": kind, "density": density, **options}
    return model


def regate(model: nn.Module, spec: dict) -> nn.Module:
    """Gate a static copy of a model the way `spec` (a gated model's gate_spec) says, so its state loads."""
    options = {k: v for k, v in spec.items() if k in ("reduction", "temperature", "bias", "start")}
    insert_gates(model, spec["kind"], spec.get("density"), **options)
    model.gate_spec = dict(spec)
    return model


def gate_spec(model: nn.Module) -> dict | None:
    """How `model` was gated (insert_gates' arguments), or None for a static model."""
    return getattr(model, "gate_spec", None)


def gated_units(model: nn.Module) -> list[tuple[str, GatedConv]]:
    """(name, unit) of every gated convolution of `model`, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, GatedConv)]


def set_execution(model: nn.Module, execution: str) -> nn.Module:
    """Run `model`'s gated layers `masked` (gates multiply) or `skip` (batch 1, eval mode: only active channels)."""
    checks.choice("execution", execution, EXECUTIONS)
    if execution == "skip" and model.training:
        raise ValueError("skip execution is for inference: call model.eval() first")
    for m in model.modules():
        if isinstance(m, (GatedConv, CompactInput)):
            m.execution = execution
    return model
