"""The regularization family: each penalty's gradient against its formula, lambda = 0 reducing to the plain model,
the removed channels being those the penalty drove lowest, and one-line errors for bad settings."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from workbench import metrics, models, training
from workbench.checks import ConfigError
from workbench.methods import METHODS
from workbench.methods.base import Context
from workbench.methods.regularization import picked_channels
from workbench.pruning import structural
from workbench.pruning.regularizers import BatchNormL1, GroupLasso, GrowingL2, bn_scales
from workbench.runner import pipeline, store
from workbench.runner.recipe import recipe
from workbench.targets import FlopsReduction

SMALL = {"dataset": "digits", "model": "small_cnn", "epochs": 1, "finetune_epochs": 1}


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1),
        nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 8 * 8, 3),
    )  # fmt: skip


def gradients(model: nn.Module, callback=None) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    x, y = torch.randn(5, 1, 8, 8), torch.randint(0, 3, (5,))
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    if callback is not None:
        callback.after_backward(0, model)
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_slimming_penalty_is_lambda_times_the_sign_of_every_bn_scale():
    model = net()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.5, -0.2, 0.0, 1.0]))
    plain, penalised = gradients(model), gradients(model, BatchNormL1(0.3, (1, 8, 8)))
    for name in plain:
        expected = plain[name]
        if name in ("1.weight", "4.weight"):
            expected = expected + 0.3 * torch.sign(dict(model.named_parameters())[name].detach())
        assert torch.allclose(penalised[name], expected), name
    assert model.training  # building Torch-Pruning's pruner (a traced forward pass) left the model in training mode


def test_group_lasso_gradient_equals_autograd_of_the_sum_of_group_norms():
    model, lam = net(), 0.05
    plain, penalised = gradients(model), gradients(model, GroupLasso(lam, "both"))
    convs = [model[0], model[3], model[7]]
    penalty = sum(m.weight.flatten(1).norm(dim=1).sum() for m in convs[:-1])  # filter groups, classifier excluded
    penalty = penalty + sum(m.weight.transpose(0, 1).flatten(1).norm(dim=1).sum() for m in convs[1:])  # channels
    grads = torch.autograd.grad(lam * penalty, [m.weight for m in convs])
    for g, name in zip(grads, ("0.weight", "3.weight", "7.weight"), strict=True):
        assert torch.allclose(penalised[name] - plain[name], g, atol=1e-6), name


def test_growing_penalty_acts_on_the_picked_channels_only_and_grows_to_its_ceiling():
    model = net()
    callback = GrowingL2({model[0]: [1, 3], model[1]: [1, 3]}, step=0.1, interval=2, ceiling=0.25)
    assert [callback.strength(k) for k in range(6)] == pytest.approx([0.1, 0.1, 0.2, 0.2, 0.25, 0.25])
    plain, penalised = gradients(model), gradients(model, callback)
    w = model[0].weight.detach()
    diff = penalised["0.weight"] - plain["0.weight"]
    assert torch.allclose(diff[[1, 3]], 0.1 * w[[1, 3]]) and torch.equal(diff[[0, 2]], torch.zeros_like(diff[[0, 2]]))
    assert torch.allclose(penalised["1.weight"] - plain["1.weight"], 0.1 * model[1].weight.detach() * torch.tensor(
        [0.0, 1.0, 0.0, 1.0]))  # fmt: skip
    assert torch.equal(penalised["3.weight"], plain["3.weight"])


def test_slimming_with_lambda_zero_trains_the_plain_dense_model_bit_for_bit():
    plain = recipe("l1", ("flops_reduction", 2.0), **SMALL)
    slim = recipe("slimming", ("flops_reduction", 2.0), hparams={"lam": 0.0}, **SMALL)
    assert plain.dense_key() != slim.dense_key()  # the regularised dense run is cached by its own key
    a = store.train_dense(plain, store.bundle_of(plain)).model.state_dict()
    b = store.train_dense(slim, store.bundle_of(slim)).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_slimming_removes_the_smallest_bn_scales_globally_and_records_their_trajectory():
    r = recipe("slimming", ("flops_reduction", 2.0), hparams={"lam": 0.05, "round_to": 0}, **SMALL)
    bundle = store.bundle_of(r)
    dense = store.train_dense(r, bundle)
    trace = dense.info["traces"]["BatchNormL1"]
    assert trace[0]["step"] == 1 and trace[-1]["q50"] < trace[0]["q50"]  # the penalty shrinks the scales
    model = store.rebuild(dense.model, bundle.input_shape, [], {})
    scales = {n: m.weight.detach().abs() for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    removed = METHODS.get("slimming").prune(model, FlopsReduction(2.0), r.hparams,
                                            Context(bundle.input_shape, 10, dense.reference))  # fmt: skip
    gone = torch.cat([scales[{"0": "1", "3": "4", "7": "8"}[name]][idxs] for name, idxs in removed])
    kept_mask = {n: torch.ones_like(s, dtype=torch.bool) for n, s in scales.items()}
    for name, idxs in removed:
        kept_mask[{"0": "1", "3": "4", "7": "8"}[name]][idxs] = False
    kept = torch.cat([s[kept_mask[n]] for n, s in scales.items()])
    assert gone.max() <= kept.min()  # one global threshold on |gamma|


def test_greg_drives_the_picked_channels_below_every_kept_one_then_removes_them():
    model = models.build("small_cnn", 10, (1, 8, 8))
    bundle = store.bundle_of(recipe("greg", ("flops_reduction", 2.0), **SMALL))
    hp = METHODS.get("greg").hparams(reg_epochs=2, step=0.2, ceiling=2.0, round_to=0)

    def train(m, epochs, lr, callbacks=()):
        steps = epochs * training.steps_per_epoch(bundle.train, 64)
        training.train(m, bundle.train, batch_size=64, lr=lr, momentum=0.9, weight_decay=0.0, total_steps=steps,
                       seed=0, callbacks=callbacks)  # fmt: skip

    structural.make_traceable(model)
    ref = {"flops": metrics.flop_count(model, (1, 8, 8))["flops"]}
    plan = structural.prune_to_target(copy.deepcopy(model), (1, 8, 8), METHODS.get("greg").importance(model, hp, None),
                                      FlopsReduction(2.0), "uniform")  # fmt: skip
    picked = picked_channels(model, (1, 8, 8), plan)
    trained = copy.deepcopy(model)
    train(trained, hp.reg_epochs, hp.reg_lr, [GrowingL2({dict(trained.named_modules())[n]: v for n, v in
                                                         _named(model, picked).items()}, 0.2, 1, 2.0)])  # fmt: skip
    for name, idxs in _named(model, picked).items():
        layer = dict(trained.named_modules())[name]
        if isinstance(layer, nn.Conv2d):
            norms = layer.weight.detach().flatten(1).norm(dim=1)
            kept = [i for i in range(len(norms)) if i not in idxs]
            assert norms[idxs].max() < 0.1 * norms[kept].min(), name  # the picked filters are negligible
    ctx = Context((1, 8, 8), 10, ref, train=train)
    removed = METHODS.get("greg").prune(model, FlopsReduction(2.0), hp, ctx)
    assert removed == plan  # exactly the channels picked before the penalty
    assert metrics.flop_count(model, (1, 8, 8))["flops"] <= ref["flops"] / 2


def _named(model: nn.Module, by_module: dict) -> dict[str, list[int]]:
    names = {m: n for n, m in model.named_modules()}
    return {names[m]: v for m, v in by_module.items()}


def test_bad_regularization_settings_fail_in_one_line():
    with pytest.raises(ConfigError, match="lam must be a number >= 0, got -0.1"):
        recipe("slimming", ("flops_reduction", 2.0), hparams={"lam": -0.1})
    with pytest.raises(ConfigError, match="unknown groups 'rows'; known: filter, channel, both"):
        recipe("ssl", ("flops_reduction", 2.0), hparams={"groups": "rows"})
    with pytest.raises(ConfigError, match="interval must be an integer >= 1, got 0"):
        recipe("greg", ("flops_reduction", 2.0), hparams={"interval": 0})
    with pytest.raises(ConfigError, match="'slimming' regularises batch-norm scales and the model has no batch norm"):
        pipeline.check_data([recipe("slimming", ("flops_reduction", 2.0), dataset="mnist1d", model="mlp")])


def test_penalties_shrink_bn_scales_more_with_a_larger_lambda():
    small = recipe("slimming", ("flops_reduction", 2.0), hparams={"lam": 1e-3}, **SMALL)
    large = recipe("slimming", ("flops_reduction", 2.0), hparams={"lam": 5e-2}, **SMALL)
    scales = [bn_scales(store.train_dense(r, store.bundle_of(r)).model).median() for r in (small, large)]
    assert scales[1] < scales[0]
