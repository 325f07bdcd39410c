"""Storage measured from serialised bytes, not from a formula: a model whose conv/linear weights take few distinct
values is written as, per layer, a float32 codebook, the indices packed at ceil(log2(codebook size)) bits, and a
bitmap of the nonzeros where the layer has zeros; every other floating-point tensor as float32."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn

from workbench.metrics import prunable_layers
from workbench.pruning.masks import make_permanent


def packed(labels: np.ndarray, bits: int) -> bytes:
    """`labels` (non-negative integers below 2^bits) packed at `bits` bits each, big-endian, the last byte padded."""
    as_bits = ((labels[:, None].astype(np.uint32) >> np.arange(bits - 1, -1, -1, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(as_bits.ravel()).tobytes()


def shared_layer_bytes(weight: torch.Tensor) -> tuple[bytes, int]:
    """The serialised layer (codebook, packed indices, bitmap of nonzeros if any weight is zero) and its index bits."""
    values = weight.detach().flatten().cpu().numpy().astype(np.float32)
    nonzero = values != 0
    codebook = np.unique(values[nonzero])
    bits = max(1, math.ceil(math.log2(max(len(codebook), 1))))
    labels = np.searchsorted(codebook, values[nonzero])
    blob = codebook.tobytes() + packed(labels, bits)
    if not nonzero.all():
        blob += np.packbits(nonzero).tobytes()
    return blob, bits


def shared_storage(model: nn.Module) -> dict[str, float]:
    """Bytes of the model written with shared conv/linear weights, of the plain float32 model, their ratio, and the
    largest index width (bits)."""
    plain = make_permanent(copy.deepcopy(model))
    layers = {f"{name}.weight" for name, _ in prunable_layers(plain)}
    shared = dense = 0
    widest = 0
    for key, tensor in plain.state_dict().items():
        if not tensor.is_floating_point():
            continue
        raw = tensor.detach().cpu().numpy().astype(np.float32).tobytes()
        dense += len(raw)
        if key in layers:
            blob, bits = shared_layer_bytes(tensor)
            shared += len(blob)
            widest = max(widest, bits)
        else:
            shared += len(raw)
    return {"storage_bytes": shared, "dense_storage_bytes": dense, "storage_ratio": dense / shared,
            "index_bits": widest}  # fmt: skip
