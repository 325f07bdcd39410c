"""The clustering family on hand-built cases: identical filters merge with the output unchanged, neuron merging
restores a duplicated (or scaled) filter exactly, weight sharing leaves at most 2^bits values per layer, and the
storage figure is the byte count of the serialised codebook, indices and the rest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from workbench import metrics
from workbench.checks import ConfigError
from workbench.methods import METHODS
from workbench.methods.base import Context
from workbench.pruning import merging
from workbench.pruning.storage import shared_storage
from workbench.runner import pipeline, store
from workbench.runner.recipe import recipe
from workbench.targets import ChannelRatio


def conv_net(duplicate: int | None) -> nn.Module:
    """conv(1->3) -> BN -> ReLU -> flatten -> linear; filter `duplicate` is a copy of filter 0 (weights and BN),
    filter 1 the largest."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 4))
    with torch.no_grad():
        bn = net[1]
        bn.weight.copy_(torch.tensor([1.5, 0.7, 1.1]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        bn.running_mean.copy_(torch.tensor([0.0, 0.2, -0.1]))
        bn.running_var.copy_(torch.tensor([0.8, 1.3, 0.6]))
        if duplicate is not None:
            net[0].weight[1] *= 3  # the largest L1 norm: filters 0 and `duplicate` tie for removal
            net[0].weight[duplicate] = net[0].weight[0]
            net[0].bias[duplicate] = net[0].bias[0]
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t[duplicate] = t[0]
    return net.eval()


def context(model: nn.Module, shape=(1, 4, 4)) -> Context:
    return Context(shape, 4, {"flops": metrics.flop_count(model, shape)["flops"]})


@pytest.mark.parametrize("method", ["filter_merge", "neuron_merge"])
def test_a_duplicated_filter_is_merged_with_the_output_unchanged(method):
    model = conv_net(duplicate=2)
    x = torch.randn(8, 1, 4, 4)
    before = model(x)
    hp = METHODS.get(method).hparams(round_to=0)
    removed = METHODS.get(method).prune(model, ChannelRatio(1 / 3), hp, context(model))
    assert model[0].out_channels == 2 and model[4].in_features == 2 * 16
    assert sorted(removed[0][1])[0] in (0, 2)  # one of the two copies went
    assert torch.allclose(model.eval()(x), before, atol=1e-5)


def test_plain_removal_of_the_same_filter_changes_the_output():
    model = conv_net(duplicate=2)
    x = torch.randn(8, 1, 4, 4)
    before = model(x)
    METHODS.get("l1").prune(model, ChannelRatio(1 / 3), METHODS.get("l1").hparams(round_to=0), context(model))
    assert not torch.allclose(model.eval()(x), before, atol=1e-3)  # what the merge compensated


def test_neuron_merging_restores_a_scaled_neuron_of_a_linear_layer_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight[1] = 0.25 * net[0].weight[0]
        net[0].bias[1] = 0.25 * net[0].bias[0]  # neuron 1 = 0.25 x neuron 0 (ReLU commutes with the scale)
        net[0].weight[2] *= 3  # keep neuron 2 the largest
    x = torch.randn(16, 4)
    before = net(x)
    hp = METHODS.get("neuron_merge").hparams(round_to=0)
    removed = METHODS.get("neuron_merge").prune(net, ChannelRatio(1 / 3), hp, context(net, (4,)))
    assert removed == [("0", [1])]
    assert torch.allclose(net(x), before, atol=1e-6)


def test_compensation_needs_the_threshold():
    folded = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    assert merging_pairs(folded, [2], 0.9) == {0: [(2, pytest.approx(float(torch.tensor([1.0, 0.1]).norm())))]}
    assert merging_pairs(folded, [1], 0.5) == {}  # orthogonal to every kept filter: nothing folded in


def merging_pairs(folded, removed, threshold):
    from workbench.methods.clustering import compensations

    return compensations(folded, removed, threshold)


def test_storage_is_the_byte_count_of_codebook_indices_and_the_rest():
    layer = nn.Linear(5, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -1.0, 0.5, 2.0, -1.0], [2.0, 0.5, 0.5, -1.0, 2.0]]))
    figures = shared_storage(nn.Sequential(layer))
    codebook, indices, bias = 3 * 4, int(np.ceil(10 * 2 / 8)), 2 * 4  # 3 values at 2 bits; bias in float32
    assert figures["storage_bytes"] == codebook + indices + bias
    assert figures["dense_storage_bytes"] == 10 * 4 + bias and figures["index_bits"] == 2
    with torch.no_grad():
        layer.weight[0, 0] = 0.0  # a zero adds a bitmap of the 10 positions (2 bytes) and leaves 9 indices
    assert shared_storage(nn.Sequential(layer))["storage_bytes"] == 3 * 4 + int(np.ceil(9 * 2 / 8)) + 2 + bias


def test_weight_sharing_leaves_at_most_two_to_the_bits_values_per_layer_after_fine_tuning():
    r = recipe("weight_sharing", ("sparsity", 0.5), hparams={"bits": 2}, dataset="digits", model="small_cnn",
               epochs=1, finetune_epochs=1)  # fmt: skip
    (rec,) = pipeline.run_recipe(r, "test-sharing")
    bundle = store.bundle_of(r)
    model, _ = store.restore_model(store.train_dense(r, bundle).model, store.run_file(rec.run_id), bundle.input_shape)
    for _, layer in metrics.prunable_layers(model):
        w = layer.weight.detach()
        assert len(torch.unique(w[w != 0])) <= 4
    assert rec.metrics["index_bits"] == 2 and rec.metrics["storage_ratio"] > 10
    assert rec.metrics["sparsity"] == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: merging.cluster(np.eye(4), 5, where="layer '0'"), r"k=5 clusters for the 4 filters of layer '0'; "
                                                                   r"accepted: 1 to 4"),
        (lambda: METHODS.get("weight_sharing").hparams(bits=17), "bits must be an integer in \\[1, 16\\], got 17"),
        (lambda: METHODS.get("weight_sharing").hparams(bits=0), "bits must be an integer in \\[1, 16\\], got 0"),
        (lambda: METHODS.get("neuron_merge").hparams(threshold=1.5), "threshold must be a number in \\[0, 1\\]"),
        (lambda: METHODS.get("filter_merge").hparams(algorithm="dbscan"), "unknown algorithm 'dbscan'"),
    ],
)  # fmt: skip
def test_bad_clustering_settings_fail_in_one_line(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
