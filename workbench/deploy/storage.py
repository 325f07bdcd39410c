"""Serialised sizes, measured: the length of what torch.save writes, never a formula.

- `serialized_bytes(model)`: the model's state as stored for deployment (masks folded into the weights: a masked
  model keeps its zeros as dense float32).
- `csr_bytes(model)`: the same state with every conv/linear weight written as a torch sparse CSR matrix
  (out x in*k*k; values, column indices and row pointers), every other tensor dense.
A channel-pruned model is smaller in `serialized_bytes` because its tensors are smaller; a masked model only in
`csr_bytes`, and only once the saved indices cost less than the zeros (int64 indices: below about 1/3 density).
Weight-shared models (the clustering family) report their packed size as `storage_bytes` (pruning/storage.py).
"""

from __future__ import annotations

import copy
import io

import torch
import torch.nn as nn

from workbench.deploy.sparse import to_csr
from workbench.metrics import prunable_layers
from workbench.pruning.masks import make_permanent


def saved_length(obj) -> int:
    """Bytes torch.save writes for `obj`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getbuffer().nbytes


def plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state of a copy of `model` with its masks folded into the weights."""
    return make_permanent(copy.deepcopy(model)).state_dict()


def serialized_bytes(model: nn.Module) -> int:
    """Bytes of the model's state (masks folded) as torch.save writes it."""
    return saved_length(plain_state(model))


def csr_bytes(model: nn.Module) -> int:
    """Bytes of the model's state with every conv/linear weight as a sparse CSR matrix."""
    plain = make_permanent(copy.deepcopy(model))
    weights = {f"{name}.weight" for name, _ in prunable_layers(plain)}
    state = {key: to_csr(t.reshape(t.shape[0], -1)) if key in weights else t for key, t in plain.state_dict().items()}
    return saved_length(state)


def sizes(**models: nn.Module) -> dict[str, int]:
    """{storage_bytes_<name>: serialised bytes} for every model given, and storage_bytes_<name>_csr for each too."""
    out = {}
    for name, model in models.items():
        out[f"storage_bytes_{name}"] = serialized_bytes(model)
        out[f"storage_bytes_{name}_csr"] = csr_bytes(model)
    return out
