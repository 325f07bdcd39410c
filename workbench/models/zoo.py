"""torchvision models, randomly initialised offline; pretrained weights only from a local file.

Four are registered by name (`resnet18`, ...); any other torchvision classification model is found by its
builder name as `torchvision:NAME` (e.g. `torchvision:densenet121`), built by `torchvision.models.get_model(NAME,
weights=None, num_classes=...)`. Those entries are made on lookup, so `MODELS.names()` lists only the registered ones.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn

from workbench.models.registry import MODELS
from workbench.registry import Entry

ARCHITECTURES = ("resnet18", "resnet50", "vgg16", "mobilenet_v2")
PREFIX = "torchvision:"
NATIVE_SIZE = {"inception_v3": 299}
"""Input sizes other than 224 that torchvision's builders are designed for."""


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


@functools.cache
def classification_models() -> tuple[str, ...]:
    """torchvision's classification builders (torchvision.models.list_models(module=torchvision.models))."""
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


def build_torchvision(
    arch: str, num_classes: int = 1000, input_shape=(3, 224, 224), weights_file: str | None = None
) -> nn.Module:
    """torchvision's `arch`, randomly initialised; a ViT is built for the input's image size (patches must tile it)."""
    import torchvision

    options = {"image_size": int(input_shape[-1])} if arch.startswith("vit_") else {}
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **options)
    if weights_file is not None:
        model.load_state_dict(torch.load(weights_file, map_location="cpu", weights_only=True))
    return model


@functools.cache
def _entry(name: str) -> Entry | None:
    if not isinstance(name, str) or not name.startswith(PREFIX) or name[len(PREFIX) :] not in classification_models():
        return None
    arch = name[len(PREFIX) :]
    size = NATIVE_SIZE.get(arch, 224)
    factory = functools.partial(build_torchvision, arch)
    return Entry(name, factory, {"kind": "torchvision", "input_shape": (3, size, size)})


class _Entries(dict):
    """The registry's entries, plus `torchvision:NAME` for every torchvision classification model on lookup."""

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or _entry(name) is not None

    def __missing__(self, name):
        entry = _entry(name)
        if entry is None:
            raise KeyError(name)
        return entry


MODELS._entries = _Entries(MODELS._entries)
