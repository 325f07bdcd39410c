"""The lottery-ticket family: IMP levels, rewinding, learning-rate rewinding, controls at every level, the instability
analysis's interpolation, and the pruning-at-initialisation sanity checks (inverted scores)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from workbench import data as wdata
from workbench import metrics, training
from workbench.checks import ConfigError
from workbench.methods import METHODS
from workbench.methods.base import INVERT_SCORES, Context
from workbench.methods.lottery import layer_sparsities, sparsity_after
from workbench.methods.sensitivity import mask_by_scores
from workbench.pruning import interpolation
from workbench.runner import pipeline, store
from workbench.runner.recipe import recipe
from workbench.targets import Sparsity

MLP = {"dataset": "mnist1d", "model": "mlp", "epochs": 2, "batch_size": 256}


def masks(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: (m.weight != 0).float() for n, m in metrics.prunable_layers(model)}


def test_sparsity_after_levels_and_bad_rates():
    assert sparsity_after(0.2, 3) == pytest.approx(1 - 0.8**3)
    for rate in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match=rf"rate must be a number in \(0, 1\), got {rate}"):
            sparsity_after(rate, 3)
    with pytest.raises(ConfigError, match="levels must be an integer >= 1, got 0"):
        sparsity_after(0.2, 0)
    with pytest.raises(ConfigError, match="rate 0.9 over 40 levels leaves 1e-40 of the weights, which is none"):
        sparsity_after(0.9, 40)


def test_layerwise_rates_reach_the_target_with_the_output_layer_at_half_the_rate():
    sizes, level = [4000, 6000, 500], 3
    rates = layer_sparsities(sizes, 0.8, level, output_rate=0.5)
    left = sum(n * (1 - s) for n, s in zip(sizes, rates, strict=True))
    assert left == pytest.approx(0.2 * sum(sizes))
    p = 1 - (1 - rates[0]) ** (1 / level)  # the shared per-level rate
    assert rates[1] == pytest.approx(rates[0]) and rates[2] == pytest.approx(1 - (1 - p / 2) ** level)
    with pytest.raises(ConfigError, match="out of reach with output_rate=0.01; the largest reachable is"):
        layer_sparsities([10, 1000], 0.99, 1, output_rate=0.01)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_imp_masks_only_shrink_and_each_level_removes_the_same_share_of_what_is_left(scope):
    r = recipe("imp", ("sparsity", sparsity_after(0.4, 3)), hparams={"scope": scope}, pruning_steps=3, rewind_step=0,
               **MLP)  # fmt: skip
    runs = [x for x in pipeline.run_recipe(r, "test-lottery") if x.role == "main"]
    bundle = store.bundle_of(r)
    dense = store.train_dense(r, bundle)
    level_masks = [masks(store.restore_model(dense.model, store.run_file(x.run_id), bundle.input_shape)[0])
                   for x in runs]  # fmt: skip
    kept = [sum(int(m.sum()) for m in lm.values()) for lm in level_masks]
    total = sum(int(m.numel()) for m in level_masks[0].values())
    for previous, current, k_prev, k in zip([None, *level_masks], level_masks, [total, *kept], kept, strict=False):
        if previous is not None:
            assert all(bool((current[n] <= previous[n]).all()) for n in current)  # no weight comes back
        assert k / k_prev == pytest.approx(0.6, abs=2e-3)  # 40% of the remaining weights go at each level
    if scope == "layer":
        out = [x for x in runs[-1].layers][-1]
        assert out["sparsity"] < runs[-1].layers[0]["sparsity"]  # the output layer is pruned more slowly


def test_rewinding_to_step_k_retrains_exactly_the_checkpointed_weights(monkeypatch):
    r = recipe("imp", ("sparsity", 0.75), pruning_steps=2, rewind_step=3, controls=["random_mask"], **MLP)
    seen = []
    real = pipeline.retrain

    def spy(model, rec, bundle, seed, callbacks=(), desc=""):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        real(model, rec, bundle, seed, callbacks, desc)

    monkeypatch.setattr(pipeline, "retrain", spy)
    pipeline.run_recipe(r, "test-lottery-rewind")
    checkpoint = store.train_dense(r, store.bundle_of(r)).checkpoint(3).model_state
    assert len(seen) == 4  # level 1, its random-mask control, level 2, its control
    for state in seen:
        for name, value in checkpoint.items():
            key = f"{name}_orig" if f"{name}_orig" in state else name
            assert torch.equal(state[key], value), name  # the unmasked weights are those of step 3, bit for bit


def test_learning_rate_rewinding_keeps_the_weights_and_replays_the_schedule_from_step_k(monkeypatch):
    r = recipe("imp", ("sparsity", 0.5), pruning_steps=1, rewind_step=3, rewind="lr", **MLP)
    calls = []
    real = training.train

    def spy(model, dataset, **kw):
        calls.append((kw, {k: v.clone() for k, v in model.state_dict().items()}))
        return real(model, dataset, **kw)

    dense = store.train_dense(r, store.bundle_of(r))
    monkeypatch.setattr(training, "train", spy)
    pipeline.run_recipe(r, "test-lottery-lr")
    (kw, state), = calls  # fmt: skip
    total = store.dense_steps(r, store.bundle_of(r))
    assert (kw["start_step"], kw["total_steps"], kw["lr"]) == (3, total, r.train.lr)
    trained = dense.model.state_dict()
    for name in ("1.weight", "3.weight", "5.weight"):
        kept = state[f"{name}_mask"].bool()
        assert torch.equal(state[f"{name}_orig"][kept], trained[name][kept])  # survivors keep their trained values


def test_controls_run_at_every_level_with_the_tickets_per_layer_counts():
    r = recipe("imp", ("sparsity", 0.75), pruning_steps=2, rewind_step=0,
               controls=["random_reinit", "random_mask", "instability"], **MLP)  # fmt: skip
    runs = pipeline.run_recipe(r, "test-lottery-controls")
    main = {x.level: x for x in runs if x.role == "main"}
    for x in runs:
        if x.role == "main":
            continue
        ticket = main[x.level]
        assert x.parent == ticket.run_id
        assert [row["nonzero"] for row in x.layers] == [row["nonzero"] for row in ticket.layers]
        if x.role == "instability":
            errors = x.metrics["interpolation_error"]
            assert errors[0] == pytest.approx(1 - ticket.metrics["top1"])  # alpha 0: the ticket itself
            assert errors[-1] == pytest.approx(1 - x.metrics["top1"])  # alpha 1: the second copy
            assert x.metrics["barrier"] == pytest.approx(max(errors) - (errors[0] + errors[-1]) / 2)


def test_interpolation_endpoints_reproduce_both_networks_with_batch_norm_too():
    bundle = wdata.load("digits", 0)
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
        training.train(net, bundle.train, batch_size=64, lr=0.05, momentum=0.9, weight_decay=0, total_steps=30,
                       seed=seed)  # fmt: skip
        nets.append(net)
    errors = interpolation.interpolation_errors(*nets, bundle.test, bundle.train_plain, alphas=(0.0, 0.5, 1.0))
    test = wdata.loader(bundle.test, 256, shuffle=False)
    assert errors[0] == 1 - metrics.top1(nets[0], test) and errors[2] == 1 - metrics.top1(nets[1], test)
    mid = interpolation.interpolated(*nets, 0.5)
    assert torch.allclose(mid[1].weight, (nets[0][1].weight + nets[1][1].weight) / 2)


def test_error_barrier_follows_its_formula():
    assert interpolation.error_barrier([0.1, 0.5, 0.3]) == pytest.approx(0.5 - 0.2)
    assert interpolation.error_barrier([0.2, 0.1, 0.2]) == pytest.approx(0.0)  # a dip is no barrier: max is an end


def test_inverted_global_magnitude_keeps_the_smallest_weights():
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.1, -2.0, 0.3, 4.0]]))
    ctx = Context((4,), 1, {}, extra={INVERT_SCORES: True})
    METHODS.get("global_magnitude").prune(nn.Sequential(layer), Sparsity(0.5), None, ctx)
    assert layer.weight_mask.tolist() == [[1.0, 0.0, 1.0, 0.0]]


def test_signed_scores_keep_the_highest_values_as_the_reference_code_does():
    layer = nn.Linear(4, 1, bias=False)  # Synaptic-Flow's GraSP keeps score > threshold, signed
    mask_by_scores(nn.Sequential(layer), {"0": torch.tensor([[-3.0, -0.1, 0.2, 2.0]])}, 0.5, "global")
    assert layer.weight_mask.tolist() == [[0.0, 0.0, 1.0, 1.0]]


def test_the_inverted_control_prunes_at_init_the_weights_the_method_keeps():
    r = recipe("global_magnitude", ("sparsity", 0.5), prune_at="init", controls=["inverted"], **MLP)
    main, flipped = pipeline.run_recipe(r, "test-lottery-invert")
    assert flipped.role == "inverted" and flipped.parent == main.run_id
    assert flipped.metrics["sparsity"] == pytest.approx(main.metrics["sparsity"], abs=1e-4)
    bundle = store.bundle_of(r)
    init = store.train_dense(r, bundle).checkpoint(0).model_state["1.weight"].abs()
    keep = masks(store.restore_model(store.train_dense(r, bundle).model, store.run_file(main.run_id),
                                     bundle.input_shape)[0])["1"]  # fmt: skip
    assert init[keep.bool()].min() >= init[~keep.bool()].max()  # the method kept the largest initial weights


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"rewind_step": 10**6}, r"rewind_step 1000000 is past the end of dense training \(30 steps: 2 epochs of 15\)"),
        ({"pruning_steps": 40, "rewind_step": 0, "target": 1 - 1e-5}, r"leaves 1 of the 78336 prunable weights"),
    ],
)
def test_bad_rewind_steps_and_levels_fail_in_one_line_before_training(kw, message, monkeypatch):
    monkeypatch.setattr(store, "train_dense", lambda *a, **k: pytest.fail("trained before checking"))
    target = kw.pop("target", 0.5)
    with pytest.raises(ConfigError, match=message):
        pipeline.check_data([recipe("imp", ("sparsity", target), **{**MLP, **kw})])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"method": "imp", "controls": ["instability"]}, "control 'instability' trains a second copy"),
        ({"method": "imp", "controls": ["inverted"]}, "control 'inverted' needs a method ranking weights by a score"),
        ({"method": "imp", "rewind": "lr"}, "rewind='lr' needs rewind_step"),
        ({"method": "imp", "rewind": "both", "rewind_step": 0}, "unknown rewind 'both'; known: weights, lr"),
    ],
)
def test_bad_lottery_recipes_fail_in_one_line(kw, message):
    with pytest.raises(ConfigError, match=message):
        recipe(kw.pop("method"), ("sparsity", 0.5), **{**MLP, **kw})
