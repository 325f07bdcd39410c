import copy

import pytest
import torch
import torch.nn as nn
from torch.nn.utils import prune

from workbench import metrics, models
from workbench.methods import METHODS, Context
from workbench.methods.magnitude import lamp_scores
from workbench.pruning.masks import make_permanent
from workbench.runner import pipeline, recipe, store
from workbench.runner.schedules import cubic_sparsity, pruning_events
from workbench.targets import Sparsity

MAGNITUDE = METHODS.names(family="magnitude")
GLOBAL = {"global_magnitude", "lamp"}


def _prune(method: str, model: nn.Module, sparsity: float) -> None:
    m = METHODS.get(method)
    m.prune(model, Sparsity(sparsity), m.hparams(), Context((1, 8, 8), 10, {}))


def _model(seed=0):
    torch.manual_seed(seed)
    return models.build("small_cnn", 10, (1, 8, 8))


def _masks(model):
    return {n: b.clone() for n, b in model.named_buffers() if n.endswith("weight_mask")}


@pytest.mark.parametrize("method", MAGNITUDE)
@pytest.mark.parametrize("target", [0.0, 0.3, 0.77, 0.95])
def test_target_sparsity_is_reached_up_to_rounding(method, target):
    model = _model()
    _prune(method, model, target)
    layers = metrics.layer_table(model, (1, 8, 8))
    total = sum(r["params"] for r in layers)
    zeros = sum(r["params"] - r["nonzero"] for r in layers)
    global_scope = method in GLOBAL
    assert abs(zeros - target * total) <= (0.5 if global_scope else 0.5 * len(layers))
    if not global_scope:
        for r in layers:
            assert abs(r["sparsity"] - target) <= 1 / r["params"]


@pytest.mark.parametrize("method", MAGNITUDE)
def test_masks_only_shrink_across_rounds(method):
    model = _model()
    previous = None
    for target in (0.2, 0.5, 0.5, 0.8, 0.9):
        with torch.no_grad():  # perturb the weights between rounds as fine-tuning would
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        _prune(method, model, target)
        masks = _masks(model)
        if previous is not None:
            for name, mask in masks.items():
                assert torch.all(mask <= previous[name]), f"{method}: a pruned weight came back in {name}"
        previous = masks
    assert metrics.sparsity(model) == pytest.approx(0.9, abs=1e-3)


def test_global_magnitude_equals_torch_global_unstructured():
    ours, reference = _model(), _model()
    _prune("global_magnitude", ours, 0.8)
    params = [(m, "weight") for _, m in metrics.prunable_layers(reference)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.8)
    for (n, a), (_, b) in zip(sorted(_masks(ours).items()), sorted(_masks(reference).items()), strict=True):
        assert torch.equal(a, b), n


def test_layerwise_keeps_the_largest_weights_of_each_layer():
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.1, -3.0, 0.2, -0.05]]))
    model = nn.Sequential(layer)
    _prune("layerwise_magnitude", model, 0.5)
    assert layer.weight_mask.tolist() == [[0.0, 1.0, 1.0, 0.0]]


def test_lamp_score_by_hand():
    w = torch.tensor([1.0, -2.0, 3.0])  # squares 1, 4, 9 sorted ascending
    expected = torch.tensor([1 / 14, 4 / 13, 9 / 9])
    assert torch.allclose(lamp_scores(w), expected)


def test_lamp_keeps_every_layer_alive_where_global_magnitude_empties_one():
    big, small = nn.Linear(10, 10, bias=False), nn.Linear(10, 10, bias=False)
    with torch.no_grad():
        big.weight.copy_(torch.linspace(1, 2, 100).view(10, 10))
        small.weight.copy_(torch.linspace(0.001, 0.01, 100).view(10, 10))
    for method, small_survives in (("global_magnitude", False), ("lamp", True)):
        model = copy.deepcopy(nn.Sequential(big, small))
        _prune(method, model, 0.5)
        assert (int(model[1].weight_mask.sum()) > 0) == small_survives, method


def test_random_baseline_depends_on_the_seed_only():
    masks = []
    for seed in (0, 0, 1):
        model = _model()
        torch.manual_seed(seed)
        _prune("random", model, 0.5)
        masks.append(_masks(model))
    assert all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])
    assert not all(torch.equal(masks[0][k], masks[2][k]) for k in masks[0])


def test_cubic_schedule_follows_zhu_and_gupta():
    assert cubic_sparsity(0, 4, 0.8) == 0.0
    assert cubic_sparsity(4, 4, 0.8) == pytest.approx(0.8)
    assert cubic_sparsity(2, 4, 0.8) == pytest.approx(0.8 * (1 - 0.5**3))
    values = [cubic_sparsity(k, 10, 0.9) for k in range(11)]
    steps = [b - a for a, b in zip(values, values[1:], strict=False)]
    assert all(s >= 0 for s in steps) and steps == sorted(steps, reverse=True)  # prunes fast early, slowly late
    assert pruning_events(100, 4) == [12, 25, 38, 50]


@pytest.mark.parametrize("method", MAGNITUDE)
def test_masks_stay_applied_through_fine_tuning(method):
    r = recipe(method, ("sparsity", 0.7), epochs=1, finetune_epochs=1, pruning_steps=3)
    bundle = store.bundle_of(r)
    dense = store.train_dense(r, bundle)
    ctx = store.context(r, bundle, dense.reference)
    model, _ = pipeline.prune_level(_model(), [], r, bundle, ctx, 1, dense, None)
    assert metrics.sparsity(model) == pytest.approx(0.7, abs=1e-3)
    before = {n: t.clone() for n, t in metrics.effective_tensors(model)}
    make_permanent(model)
    after = dict(metrics.effective_tensors(model))
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert not any(n.endswith("_mask") for n, _ in model.named_buffers())
