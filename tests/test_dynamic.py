"""Dynamic execution: gated convolutions (FBS, DGNet's channel gate), their two executions, FLOPs per input,
the FLOPs-budget loss, the pipeline's gated runs and bad input."""

import copy
import math

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from workbench import checks, models
from workbench.gating import find_sites, gated_units, insert_gates, set_execution
from workbench.gating.cost import FlopsBudget, costs, executed_macs, per_input_flops, uniform_density
from workbench.gating.timing import compare
from workbench.gating.units import FBSConv, GumbelGateConv, topk_mask
from workbench.targets import FlopsReduction, GateDensity

pytestmark = pytest.mark.builds_models


def two_layer() -> nn.Sequential:
    """conv(1->4) bn relu conv(4->6) bn relu flatten linear(6*4*4 -> 3), on 1x4x4 inputs."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 16, 3),
    ).eval()  # fmt: skip


def trained_like(model: nn.Module) -> nn.Module:
    """Batch-norm statistics and positive scales as a trained model would have."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def skip_outputs(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Outputs of the skipping execution, one input at a time, and the FLOPs flop_counter saw for each."""
    set_execution(model, "skip")
    outs, flops = [], []
    with torch.no_grad():
        for i in range(len(x)):
            with FlopCounterMode(display=False) as counter:
                outs.append(model(x[i : i + 1]))
            flops.append(counter.get_total_flops())
    set_execution(model, "masked")
    return torch.cat(outs), flops


def test_fbs_at_density_one_with_a_flat_predictor_equals_the_dense_layers():
    dense = trained_like(models.build("small_cnn", 10, (1, 8, 8)))
    gated = insert_gates(copy.deepcopy(dense), "fbs", density=1.0)
    for _, unit in gated_units(gated):
        unit.phi.data.zero_()  # saliency = relu(rho) = the trained batch-norm scale: the dense layer exactly
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(gated(x), dense(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("density", [0.25, 0.5, 0.7])
def test_fbs_keeps_exactly_ceil_d_c_channels_per_input(density):
    gated = insert_gates(trained_like(models.build("small_cnn", 10, (1, 8, 8))), "fbs", density=density)
    x = torch.randn(9, 1, 8, 8)
    outputs = {}
    hooks = [u.register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o)) for n, u in gated_units(gated)]
    with torch.no_grad():
        gated(x)
    for h in hooks:
        h.remove()
    for name, unit in gated_units(gated):
        k = math.ceil(density * unit.out_channels)
        assert unit.last_mask.sum(1).tolist() == [k] * len(x)
        silent = (outputs[name].flatten(2).abs().amax(2) == 0).sum(1)
        assert (silent >= unit.out_channels - k).all()  # inactive channels are exactly zero


def test_topk_mask_keeps_the_k_largest_per_row():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3], [4.0, 1.0, 2.0, 3.0]])
    assert topk_mask(scores, 2).tolist() == [[0, 1, 1, 0], [1, 0, 0, 1]]
    assert topk_mask(scores, 4).tolist() == [[1] * 4] * 2


def test_fbs_saliency_follows_the_formula_on_a_hand_built_case():
    conv = nn.Conv2d(2, 3, 1, bias=False)
    unit = FBSConv(conv, None, density=2 / 3)
    with torch.no_grad():
        unit.phi.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        unit.rho.copy_(torch.tensor([0.0, 0.5, -3.0]))
    pooled = torch.tensor([[2.0, 1.0]])  # saliency relu(phi s + rho) = [2, 1.5, 0]: channels 0 and 1 kept
    mask, gain = unit.decide(pooled, None)
    assert mask.tolist() == [[1.0, 1.0, 0.0]]
    assert gain.tolist() == [[2.0, 1.5, 0.0]]


@pytest.mark.parametrize("name,shape", [("small_cnn", (1, 8, 8)), ("cnn1d", (1, 40)), ("resnet20", (3, 32, 32))])
@pytest.mark.parametrize("kind,options", [("fbs", {"density": 0.5}), ("dgnet", {"bias": 0.0})])
def test_skipping_gives_the_masked_outputs_and_the_counted_flops(name, shape, kind, options):
    torch.manual_seed(0)
    gated = insert_gates(trained_like(models.build(name, 10, shape)), kind, **options)
    x = torch.randn(4, *shape)
    with torch.no_grad():
        masked = gated(x)
    counted = per_input_flops(gated, x)
    skipped, seen = skip_outputs(gated, x)
    torch.testing.assert_close(skipped, masked, atol=1e-4, rtol=1e-4)
    assert counted.tolist() == [float(f) for f in seen]


def test_flops_per_input_equal_a_hand_count_on_a_two_layer_network():
    gated = insert_gates(trained_like(two_layer()), "fbs", density=0.5)  # 2 of 4, then 3 of 6 channels
    x = torch.randn(3, 1, 4, 4)
    conv1 = 2 * 9 * 16 * 1 * 2  # 2 FLOPs x kernel x positions x inputs on x outputs on
    predictor1 = 2 * 1 * 4  # FBS predictor: inputs on x output channels
    conv2 = 2 * 9 * 16 * 2 * 3
    predictor2 = 2 * 2 * 6
    linear = 2 * (3 * 16) * 3  # 3 channels of 16 positions into 3 outputs
    assert per_input_flops(gated, x).tolist() == [conv1 + predictor1 + conv2 + predictor2 + linear] * 3


def test_flops_with_every_channel_on_equal_flop_counter_on_the_masked_model():
    from workbench import metrics

    gated = insert_gates(trained_like(models.build("vgg16_cifar", 10, (3, 32, 32))), "fbs", density=1.0)
    x = torch.randn(2, 3, 32, 32)
    assert per_input_flops(gated, x).tolist() == [float(metrics.flop_count(gated, (3, 32, 32))["flops"])] * 2


def test_gumbel_gate_is_deterministic_in_eval_and_trains_through_the_straight_through_estimator():
    unit = GumbelGateConv(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), bias=0.0).eval()
    pooled = torch.randn(5, 4)
    mask, _ = unit.decide(pooled, None)
    logits = nn.functional.linear(torch.relu(unit.gate_bn(nn.functional.linear(pooled, unit.w1))), unit.w2, unit.b)
    assert torch.equal(mask, (logits >= 0).float())
    unit.train()
    torch.manual_seed(0)
    mask, _ = unit.decide(pooled, None)
    assert set(mask.detach().unique().tolist()) <= {0.0, 1.0}
    mask.sum().backward()
    assert unit.b.grad is not None and unit.b.grad.abs().sum() > 0


def test_flops_budget_loss_follows_dgnet_formula():
    gated = insert_gates(trained_like(two_layer()), "dgnet", bias=0.0)
    gated.gate_spec["flops_target"] = 0.5
    callback = FlopsBudget((1, 4, 4), steps_per_epoch=10, lbda=5.0, gamma=1.0, alpha=0.0)
    x = torch.randn(4, 1, 4, 4)
    gated(x)
    base = torch.tensor(1.0)
    loss = callback.on_loss(0, gated, base)
    cost = costs(gated, (1, 4, 4))
    ratio = executed_macs(gated, cost).mean() / cost.dense_macs
    t = uniform_density(cost, 0.5)
    dens = torch.stack([u.last_mask.mean() for _, u in gated_units(gated)])
    balance = (torch.relu(t - dens) ** 2 + torch.relu(dens - t) ** 2).mean()  # p = 1 at the first epoch
    expected = 1.0 + 5.0 * (ratio - 0.5) ** 2 + balance
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_uniform_density_meets_the_flops_ratio():
    gated = insert_gates(trained_like(models.build("small_cnn", 10, (1, 8, 8))), "fbs", density=1.0)
    cost = costs(gated, (1, 8, 8))
    t = uniform_density(cost, 0.3)
    assert 0 < t < 1
    with torch.no_grad():
        for _, u in gated_units(gated):
            u.k = max(1, round(t * u.out_channels))
    ratio = float(per_input_flops(gated, torch.randn(2, 1, 8, 8), cost)[0]) / (2 * cost.dense_macs)
    assert ratio == pytest.approx(0.3, abs=0.05)  # channel counts are whole numbers


def test_sites_skip_residual_channels_and_models_without_gateable_convolutions():
    resnet = models.build("resnet20", 10, (3, 32, 32))
    assert len(find_sites(resnet)) == 9  # one per basic block: the channels between its two convolutions
    assert find_sites(models.build("mlp", 10, (1, 40))) == []
    with pytest.raises(checks.ConfigError, match="no gateable convolution"):
        insert_gates(models.build("mlp", 10, (1, 40)), "fbs", density=0.5)


@pytest.mark.parametrize("value", [0.0, -0.1, 1.5])
def test_gate_density_outside_0_1_is_refused_in_one_line(value):
    with pytest.raises(checks.ConfigError, match=r"gate density must be a number in \(0, 1\]") as info:
        GateDensity(value)
    assert "\n" not in str(info.value)


def test_a_flops_budget_above_dense_is_refused():
    with pytest.raises(checks.ConfigError, match="flops_reduction must be a number >= 1, got 0.5"):
        FlopsReduction(0.5)


def test_gating_a_model_without_gateable_convolution_is_refused_before_training():
    from workbench.runner import plan
    from workbench.runner.pipeline import check_data

    recipes = plan(["fbs"], [0.5], [0], target_kind="gate_density", dataset="mnist1d", model="mlp", epochs=1)
    with pytest.raises(checks.ConfigError, match="method 'fbs' gates convolutions and the model has no gateable"):
        check_data(recipes)


def test_timing_rows_have_their_fields():
    dense = trained_like(models.build("small_cnn", 10, (1, 8, 8)))
    gated = insert_gates(copy.deepcopy(dense), "fbs", density=0.5)
    rows = compare(dense, gated, torch.randn(3, 1, 8, 8), rounds=1, min_run_time=0.01)
    assert [r["execution"] for r in rows] == ["dense", "masked", "skip"]
    for row in rows:
        assert {"ms_per_input", "speedup", "flops_speedup", "efficiency", "batch_size", "threads"} <= set(row)
    assert rows[2]["flops_speedup"] > 2  # the gates' claim: dense / mean executed FLOPs


@pytest.mark.slow
def test_a_gated_run_records_its_flops_distribution_and_restores():
    from workbench.runner import sweeps

    common = dict(seeds=[0], dataset="digits", model="small_cnn", epochs=1, finetune_epochs=1)
    runs = sweeps("test-dynamic", {
        "fbs": {**common, "methods": ["fbs"], "targets": [0.5], "target_kind": "gate_density"},
        "dgnet": {**common, "methods": ["dgnet"], "targets": [2.0], "target_kind": "flops_reduction"},
    }, progress=False)  # fmt: skip
    for result in runs.values():
        (rec,) = result.records
        m = rec.metrics
        assert len(m["flops_per_input"]) == len(result.bundle.test)
        assert m["flops_mean"] == pytest.approx(sum(m["flops_per_input"]) / len(m["flops_per_input"]))
        model = result.model(rec.run_id, 0).eval()
        assert set(m["gate_activity"]) == {name for name, _ in gated_units(model)}
        x = result.bundle.test.tensors[0][:8]
        assert per_input_flops(model, x).tolist() == m["flops_per_input"][:8]


def test_a_run_model_missing_from_the_cache_is_computed_again_exactly():
    """A fresh clone has the records but not the run cache: the notebook's latency table still gets the models."""
    from workbench import paths
    from workbench.runner import store, sweep

    result = sweep("test-dynamic-rebuild", ["fbs"], [0.5], [0], target_kind="gate_density", dataset="digits",
                   model="small_cnn", epochs=1, finetune_epochs=1, progress=False)  # fmt: skip
    (rec,) = result.records
    x = result.bundle.test.tensors[0][:8]
    with torch.no_grad():
        before = result.model(rec.run_id, 0).eval()(x)
    record_file = paths.records_dir("test-dynamic-rebuild") / f"{rec.run_id}.json"
    text = record_file.read_text()
    store.run_file(rec.run_id).unlink()
    with torch.no_grad():
        after = result.model(rec.run_id, 0).eval()(x)
    assert torch.equal(before, after) and record_file.read_text() == text
