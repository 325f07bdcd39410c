"""Merging channels instead of dropping them: the consumers of a removed channel absorb it into a kept one.

A coupled group (Torch-Pruning) has producers (layers whose output channels are the group's channels) and consumers
(layers reading them). If channel m's activation equals s times channel r's, removing m and adding s * W[:, m] to
the consumers' W[:, r] leaves the network's output unchanged; that is the whole trick of filter merging and of
neuron merging (Kim et al., 2020), which differ in how they pick r and s.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from workbench import checks

ALGORITHMS = ("kmeans", "agglomerative")
LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def producers(group, graph) -> list[tuple[nn.Module, dict[int, int]]]:
    """(layer, {root index: output index}) of every conv/linear layer whose outputs are the group's channels."""
    found = []
    for item in group:
        module = item.dep.target.module
        if isinstance(module, LAYERS) and graph.is_out_channel_pruning_fn(item.dep.handler):
            found.append((module, dict(zip(map(int, item.root_idxs), map(int, item.idxs), strict=True))))
    return found


def consumers(group, graph) -> list[tuple[nn.Module, dict[int, list[int]]]]:
    """(layer, {root index: its input indices}) of every conv/linear layer reading the group's channels (a linear
    layer after a flatten reads several inputs per channel)."""
    found = []
    for item in group:
        module = item.dep.target.module
        if isinstance(module, LAYERS) and not graph.is_out_channel_pruning_fn(item.dep.handler):
            inputs: dict[int, list[int]] = {}
            for idx, root in zip(map(int, item.idxs), map(int, item.root_idxs), strict=True):
                inputs.setdefault(root, []).append(idx)
            found.append((module, inputs))
    return found


def batch_norm_after(group, graph) -> list[tuple[nn.Module, dict[int, int]]]:
    """(batch norm, {root index: channel}) of the group's batch-norm layers."""
    found = []
    for item in group:
        module = item.dep.target.module
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            found.append((module, dict(zip(map(int, item.root_idxs), map(int, item.idxs), strict=True))))
    return found


@torch.no_grad()
def merge(group, graph, absorbed: dict[int, list[tuple[int, float]]]) -> None:
    """For each kept root channel r, add sum of s * W[:, m] over its absorbed (m, s) to every consumer's W[:, r]."""
    for layer, inputs in consumers(group, graph):
        weight = layer.weight
        for keep, members in absorbed.items():
            for member, scale in members:
                for into, source in zip(inputs[keep], inputs[member], strict=True):
                    weight[:, into] += scale * weight[:, source]


def filter_matrix(group, graph, units: list[int]) -> np.ndarray:
    """One row per root channel in `units`: its producers' filters, each flattened and scaled to unit L2 norm,
    concatenated (the vectors clustering compares)."""
    rows = []
    for layer, out in producers(group, graph):
        w = layer.weight.detach()[[out[u] for u in units]].flatten(1)
        rows.append(w / w.norm(dim=1, keepdim=True).clamp_min(1e-12))
    return torch.cat(rows, dim=1).double().numpy()


def cluster(features: np.ndarray, k: int, algorithm: str = "kmeans", seed: int = 0, where: str = "the layer"):
    """Labels of `k` clusters of the rows of `features` (scikit-learn), and each cluster's representative: the
    member nearest to its centroid. `k` above the number of rows is a one-line error."""
    checks.choice("algorithm", algorithm, ALGORITHMS)
    n = len(features)
    if not 1 <= k <= n:
        raise checks.ConfigError(f"k={k} clusters for the {n} filters of {where}; accepted: 1 to {n}")
    from sklearn.cluster import AgglomerativeClustering, KMeans  # here: sklearn costs 0.8 s in every importer

    if algorithm == "kmeans":
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(features)
    else:
        labels = AgglomerativeClustering(n_clusters=k).fit_predict(features)
    reps = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        centroid = features[members].mean(0)
        reps.append(int(members[np.argmin(((features[members] - centroid) ** 2).sum(1))]))
    return labels, reps
