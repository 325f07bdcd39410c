"""The clustering family: redundancy found by grouping similar filters or weights, merged or shared, not zeroed.

- `filter_merge`: per coupled group, k-means (or agglomerative) clustering of the filters (flattened, unit norm,
  scikit-learn), one representative per cluster (the member nearest its centroid), the others *merged*: the
  consumers' input weights of a cluster are summed into the representative's, then the others are removed through
  the dependency graph. The merging view of Centripetal SGD (Ding et al., 2019), without its training that pulls a
  cluster's filters together: here the merge is exact only for identical filters and fine-tuning follows.
- `neuron_merge` (Kim et al., NeurIPS 2020): filters chosen for removal by L1 norm; each is compensated by the kept
  filter most similar to it, if the cosine similarity reaches `threshold`, scaled by the ratio of their norms and
  folded into the consumers. Similarity is measured on the batch-norm-folded filter (a = gamma / sigma times the
  filter, with the folded bias as one more coordinate), which is exact whenever one folded filter is a positive
  multiple of another (ReLU commutes with positive scaling). Kim et al.'s batch-norm variant instead mixes the raw
  filters' cosine distance with a normalised bias mismatch (weight `lamda`, decompose.py of their code); groups
  with several producers (residual additions) are removed without compensation.
- `weight_sharing` (Han et al., ICLR 2016, Deep Compression): layer-wise magnitude pruning to the target (0: none),
  then per layer k-means of the remaining weights into 2^bits shared values with linear initialisation between the
  smallest and largest weight; fine-tuning updates each shared value by the sum of its members' gradients. The
  record carries the storage measured from serialised bytes (codebook, packed indices, a bitmap of the nonzeros
  where the layer was pruned, the other parameters in float32; Han et al. use relative sparse indexing and Huffman
  coding, not done here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from workbench import checks
from workbench.hparams import Hparams, param
from workbench.methods.base import Context, Method, register
from workbench.methods.ranking import FilterRanking, StructuredHparams
from workbench.metrics import prunable_layers
from workbench.pruning import merging, ranking, structural
from workbench.pruning.masks import prune_layerwise
from workbench.pruning.storage import shared_storage
from workbench.targets import ChannelRatio, FlopsReduction, ParamReduction, Sparsity
from workbench.training import Callback


class Merging(FilterRanking):
    family = "clustering"
    targets = (FlopsReduction, ParamReduction, ChannelRatio)

    def importance(self, model, hp, ctx):
        return ranking.FilterNorm(p=1)


@dataclass(frozen=True)
class MergeHparams(StructuredHparams):
    algorithm: str = param("kmeans", "kmeans or agglomerative (scikit-learn) on the unit-norm filters")
    allocation: str = param("uniform", "uniform only: every group is clustered into its share of clusters")

    def __post_init__(self):
        super().__post_init__()
        checks.choice("algorithm", self.algorithm, merging.ALGORITHMS)
        checks.choice("allocation", self.allocation, ("uniform",))


@register
class FilterMerge(Merging):
    name, cite, Hparams = "filter_merge", "ding2019centripetal", MergeHparams
    summary = "filters clustered per layer; each cluster's consumers' weights summed into one representative"

    def prune(self, model: nn.Module, target, hp: MergeHparams, ctx: Context) -> list | None:
        step = self.step_target(model, target, ctx)
        if step is None:
            return None
        planner = structural.ChannelPlanner(model, ctx.input_shape, self.importance(model, hp, ctx), "uniform",
                                            hp.round_to or None, hp.max_ratio)  # fmt: skip
        entries = []
        for plan, removed in zip(planner.plans, planner.counts_for(step), strict=True):
            if removed == 0:
                continue
            if plan.ch_groups != 1:
                raise ValueError(f"filter_merge does not merge grouped channels (group of {plan.name})")
            features = merging.filter_matrix(plan.group, planner.graph, list(range(plan.units)))
            k = plan.units - removed
            labels, reps = merging.cluster(features, k, hp.algorithm, ctx.seed, where=f"layer {plan.name!r}")
            absorbed = {rep: [(int(m), 1.0) for m in np.flatnonzero(labels == c) if m != rep] for c, rep in
                        enumerate(reps)}  # fmt: skip
            merging.merge(plan.group, planner.graph, absorbed)
            entries.append((plan.name, sorted(m for members in absorbed.values() for m, _ in members)))
        return structural.replay(model, ctx.input_shape, entries)


@dataclass(frozen=True)
class NeuronMergeHparams(StructuredHparams):
    threshold: float = param(0.45, "least cosine similarity for a compensation (Kim et al.'s FC setting: 0.45)")

    def __post_init__(self):
        super().__post_init__()
        checks.number("threshold", self.threshold, 0.0, 1.0)


@register
class NeuronMerge(Merging):
    name, cite, Hparams = "neuron_merge", "kim2020neuron", NeuronMergeHparams
    summary = "filters removed by L1 norm, each compensated by its most similar kept filter, scaled, in the next layer"

    def prune(self, model: nn.Module, target, hp: NeuronMergeHparams, ctx: Context) -> list | None:
        step = self.step_target(model, target, ctx)
        if step is None:
            return None
        plan = self.planned_removal(model, step, hp, ctx)
        graph = structural.dependency_graph(model, ctx.input_shape)
        modules = dict(model.named_modules())
        for name, removed in plan:
            root = modules[name]
            units = root.weight.shape[0]
            group = structural.out_channel_group(graph, root, range(units))
            made = merging.producers(group, graph)
            if len(made) != 1:
                continue  # coupled residual channels: removal only
            folded = folded_filters(made[0], merging.batch_norm_after(group, graph), units)
            merging.merge(group, graph, compensations(folded, removed, hp.threshold))
        return structural.replay(model, ctx.input_shape, plan)


def folded_filters(producer, norms, units: int) -> torch.Tensor:
    """One row per channel: the producer's filter times gamma / sigma of the batch norm after it, and the folded
    bias gamma * (b - mu) / sigma + beta as the last coordinate (no batch norm: the filter and its bias)."""
    layer, out = producer
    order = [out[u] for u in range(units)]
    w = layer.weight.detach()[order].flatten(1).double()
    b = layer.bias.detach()[order].double() if layer.bias is not None else torch.zeros(units, dtype=torch.float64)
    for bn, idx in norms[:1]:
        channel = [idx[u] for u in range(units)]
        sigma = (bn.running_var[channel].double() + bn.eps).sqrt()
        a = bn.weight.detach()[channel].double() / sigma
        w = w * a[:, None]
        b = a * (b - bn.running_mean[channel].double()) + bn.bias.detach()[channel].double()
    return torch.cat([w, b[:, None]], dim=1)


def compensations(folded: torch.Tensor, removed: list[int], threshold: float) -> dict[int, list[tuple[int, float]]]:
    """Kept channel -> [(removed channel, scale)]: each removed channel goes to the kept one of highest cosine
    similarity of folded filters, if it reaches `threshold`, with scale ||f_removed|| / ||f_kept||."""
    gone = set(removed)
    kept = [i for i in range(len(folded)) if i not in gone]
    norms = folded.norm(dim=1).clamp_min(1e-12)
    unit = folded / norms[:, None]
    out: dict[int, list[tuple[int, float]]] = {}
    for m in removed:
        similarity = unit[kept] @ unit[m]
        best = int(torch.argmax(similarity))
        if float(similarity[best]) >= threshold:
            j = kept[best]
            out.setdefault(j, []).append((m, float(norms[m] / norms[j])))
    return out


@dataclass(frozen=True)
class SharingHparams(Hparams):
    bits: int = param(4, "bits per weight index: 2^bits shared values per layer")

    def __post_init__(self):
        checks.integer("bits", self.bits, 1, 16)


@register
class WeightSharing(Method):
    name, family, granularity, targets, cite = "weight_sharing", "clustering", "weight", (Sparsity,), "han2016deep"
    Hparams = SharingHparams
    summary = "Deep Compression: layer-wise magnitude pruning (target 0: none), then 2^bits shared values per layer"

    def prune(self, model: nn.Module, target: Sparsity, hp: SharingHparams, ctx: Context) -> None:
        self.check_target(target)
        if target.value > 0:
            prune_layerwise(model, target.value)
        codes = {}
        for name, layer in prunable_layers(model):
            param_ = trainable_weight(layer)
            with torch.no_grad():
                values = layer.weight.detach().flatten()
                where = values.nonzero().squeeze(1)
                centroids, labels = share(values[where], 2**hp.bits, ctx.seed)
                param_.view(-1)[where] = centroids[labels]
            codes[name] = (where, labels)
        ctx.extra["shared_codes"] = codes

    def finetune_callbacks(self, hp, ctx: Context) -> list:
        return [SharedGradients(ctx)]

    def metrics(self, model: nn.Module, hp: SharingHparams) -> dict:
        return shared_storage(model)


def trainable_weight(layer: nn.Module) -> torch.Tensor:
    """The tensor the optimizer updates: `weight_orig` under a torch.nn.utils.prune mask, else `weight`."""
    return getattr(layer, "weight_orig", layer.weight)


def share(values: torch.Tensor, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(centroids, labels): 1-D k-means of `values` into at most k shared values, initialised linearly between the
    smallest and largest value (Han et al.'s best initialisation)."""
    x = values.double().numpy()[:, None]
    k = max(1, min(k, len(np.unique(x))))
    init = np.linspace(x.min(), x.max(), k)[:, None]
    from sklearn.cluster import KMeans  # here, not at the top: sklearn costs 0.8 s in every worker that imports this

    fit = KMeans(n_clusters=k, init=init, n_init=1, random_state=seed).fit(x)
    return torch.as_tensor(fit.cluster_centers_[:, 0], dtype=values.dtype), torch.as_tensor(fit.labels_)


class SharedGradients(Callback):
    """Han et al.'s centroid update: every member of a cluster gets the sum of its cluster's gradients, so a cluster's
    weights move together and stay one shared value (with momentum and weight decay alike)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def after_backward(self, step: int, model: nn.Module) -> None:
        modules = dict(model.named_modules())
        for name, (where, labels) in self.ctx.extra.get("shared_codes", {}).items():
            grad = trainable_weight(modules[name]).grad
            if grad is None:
                continue
            flat = grad.view(-1)
            sums = torch.zeros(int(labels.max()) + 1, dtype=flat.dtype).index_add_(0, labels, flat[where])
            flat[where] = sums[labels]
