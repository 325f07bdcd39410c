import copy

import pytest
import torch
import torch_pruning as tp

from workbench import metrics, models, speed
from workbench.methods import METHODS
from workbench.pruning import structural
from workbench.targets import ChannelRatio, FlopsReduction, LatencyBudget, LatencyFraction, ParamReduction, Sparsity

SHAPES = {"small_cnn": (1, 8, 8), "cnn1d": (1, 40), "mlp": (1, 40)}


def _shape(name):
    return SHAPES.get(name, (3, 32, 32) if models.MODELS.info(name)["kind"] != "torchvision" else (3, 64, 64))


def l1(model):
    return tp.importance.MagnitudeImportance(p=1)


@pytest.mark.parametrize("name", ["resnet20", "resnet32", "resnet56", "resnet110"])
def test_option_a_stand_in_computes_the_same_function(name):
    torch.manual_seed(0)
    model = models.build(name, 10).eval()
    x = torch.randn(3, 3, 32, 32)
    before = model(x)
    structural.make_traceable(model)
    assert torch.allclose(before, model(x), atol=1e-5)
    assert not any(p.requires_grad for m in model.modules() if isinstance(m, structural.SelectShortcut)
                   for p in m.parameters())  # fmt: skip


@pytest.mark.parametrize("name", models.MODELS.names())
def test_every_model_loses_channels_physically_and_still_runs(name):
    shape = _shape(name)
    torch.manual_seed(0)
    model = structural.make_traceable(models.build(name, 10, shape)).eval()
    dense_flops = metrics.flop_count(model, shape)["flops"]
    dense_params = metrics.count_params(model)["params"]
    structural.prune_to_ratio(model, shape, l1(model), 0.3)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10)  # the classifier output is protected
    assert metrics.flop_count(model, shape)["flops"] < dense_flops
    assert metrics.count_params(model)["params"] < dense_params
    assert not any(name.endswith("_mask") for name, _ in model.named_buffers())  # no masks: smaller tensors


def test_flops_target_is_reached():
    shape = (3, 32, 32)
    model = structural.make_traceable(models.build("resnet56", 10)).eval()
    dense = metrics.flop_count(model, shape)["flops"]
    structural.prune_to_target(model, shape, l1(model), FlopsReduction(2.0), "global")
    reduction = dense / metrics.flop_count(model, shape)["flops"]
    assert reduction >= 2.0
    assert reduction == pytest.approx(2.0, rel=0.03)


@pytest.mark.parametrize("allocation, round_to", [("uniform", None), ("uniform", 8), ("global", 8)])
def test_flops_target_is_reached_by_the_smallest_ratio(allocation, round_to):
    shape = (3, 32, 32)
    model = structural.make_traceable(models.build("resnet20", 10)).eval()
    planner = structural.ChannelPlanner(model, shape, l1(model), allocation, round_to)
    ratio = planner.ratio_for(FlopsReduction(2.0))
    goal = planner.dense["flops"] / 2.0
    flops_at = lambda r: planner.estimate(planner.counts(r))["flops"]  # noqa: E731
    assert flops_at(ratio) <= goal < flops_at(ratio - 1e-6)
    planner.apply(planner.counts(ratio))
    assert metrics.flop_count(model, shape)["flops"] <= goal


def _param_reduction(dense, pruned):
    return metrics.count_params(dense)["params"] / metrics.count_params(pruned)["params"]


def _sparsity(dense, pruned):
    return 1 - metrics.prunable_weight_count(pruned) / metrics.prunable_weight_count(dense)


@pytest.mark.parametrize("allocation", structural.ALLOCATIONS)
def test_parameter_and_sparsity_targets_are_reached(allocation):
    shape = (3, 32, 32)
    dense = structural.make_traceable(models.build("resnet20", 10)).eval()
    pruned = copy.deepcopy(dense)
    structural.prune_to_target(pruned, shape, l1(pruned), ParamReduction(3.0), allocation)
    assert _param_reduction(dense, pruned) >= 3.0
    pruned = copy.deepcopy(dense)
    structural.prune_to_target(pruned, shape, l1(pruned), Sparsity(0.6), allocation)
    assert _sparsity(dense, pruned) >= 0.6


def test_channel_ratio_removes_that_fraction_of_every_group():
    model = structural.make_traceable(models.build("resnet20", 10)).eval()
    removed = structural.prune_to_target(model, (3, 32, 32), l1(model), ChannelRatio(0.5))
    assert len(removed) == 12 and model.conv1.out_channels == 8 and model.layer3[0].conv1.out_channels == 32


def test_latency_budget_is_met_by_timing_pruned_copies(monkeypatch):
    shape = (3, 32, 32)
    model = structural.make_traceable(models.build("resnet20", 10)).eval()
    dense_flops = metrics.flop_count(model, shape)["flops"]
    timed = []
    measure = metrics.latency_ms
    monkeypatch.setattr(metrics, "latency_ms", lambda *a, **k: timed.append(1) or measure(*a, **k))
    assert structural.prune_to_target(model, shape, l1(model), LatencyBudget(1e6)) == []  # dense is within budget
    assert len(timed) == 6 and metrics.flop_count(model, shape)["flops"] == dense_flops  # 3 rounds x (dense, copy)
    with pytest.raises(ValueError, match="out of reach"):
        structural.prune_to_target(model, shape, l1(model), LatencyBudget(1e-6))
    assert len(timed) == 6 + 12  # the unpruned copy, then the most pruned candidate, each against dense


def test_latency_budget_bisection_is_bounded(monkeypatch):
    shape = (3, 32, 32)
    model = structural.make_traceable(models.build("resnet20", 10)).eval()
    dense_flops = metrics.flop_count(model, shape)["flops"]
    timed = []
    measure = metrics.latency_ms
    monkeypatch.setattr(metrics, "latency_ms", lambda *a, **k: timed.append(1) or measure(*a, **k))
    budget = measure(speed.inference_ready(model), shape, 1, 1, 0.2, True)["latency_ms"] * 0.7
    structural.prune_to_target(model, shape, l1(model), LatencyBudget(budget))
    assert len(timed) % 6 == 0 and 2 <= len(timed) // 6 <= 10  # candidates: unpruned, most pruned, 8 bisections
    assert metrics.flop_count(model, shape)["flops"] < dense_flops


def test_a_latency_fraction_holds_when_load_arrives_midway(monkeypatch):
    """Timings three times slower after the first two (another process starts): each candidate is held to
    the dense timing of its own alternating rounds, so the budget is still met, not declared out of reach."""
    shape = (3, 32, 32)
    model = structural.make_traceable(models.build("resnet20", 10)).eval()
    calls = []

    def loaded(ready, input_shape, *args, **kwargs):  # milliseconds proportional to FLOPs, times the load
        calls.append(1)
        load = 1.0 if len(calls) <= 2 else 3.0
        return {"latency_ms": load * metrics.flop_count(ready, input_shape)["flops"] / 1e6}

    monkeypatch.setattr(metrics, "latency_ms", loaded)
    dense_flops = metrics.flop_count(model, shape)["flops"]
    structural.prune_to_target(model, shape, l1(model), LatencyFraction(0.5))
    kept = metrics.flop_count(model, shape)["flops"] / dense_flops
    assert 0.4 < kept <= 0.5  # held to the loaded dense timing; against the unloaded one it would keep about 1/6


def test_unsupported_targets_and_allocations_fail_in_one_line():
    shape = (3, 32, 32)
    model = structural.make_traceable(models.build("resnet20", 10)).eval()
    with pytest.raises(
        ValueError, match=r"unsupported target 2\.0 for channel pruning; known: FlopsReduction"
    ) as error:
        structural.prune_to_target(model, shape, l1(model), 2.0)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="unknown allocation 'local'; known: uniform, global"):
        structural.prune_to_target(model, shape, l1(model), FlopsReduction(2.0), "local")


def test_global_allocation_differs_from_uniform():
    shape = (3, 32, 32)
    torch.manual_seed(0)
    base = structural.make_traceable(models.build("resnet20", 10)).eval()
    uniform, global_ = copy.deepcopy(base), copy.deepcopy(base)
    structural.prune_to_ratio(uniform, shape, l1(uniform), 0.4, "uniform")
    structural.prune_to_ratio(global_, shape, l1(global_), 0.4, "global")
    widths = lambda m: [c.out_channels for c in m.modules() if isinstance(c, torch.nn.Conv2d)]  # noqa: E731
    assert widths(uniform) != widths(global_)
    with pytest.raises(ValueError, match="unknown allocation 'local'; known: uniform, global"):
        structural.prune_to_ratio(copy.deepcopy(base), shape, l1(base), 0.4, "local")


def test_targets_validate_their_value():
    with pytest.raises(ValueError, match="flops_reduction must be a number >= 1, got 0.5"):
        FlopsReduction(0.5)


def test_pruned_model_saves_and_loads_with_weights_only(tmp_path):
    shape = (3, 32, 32)
    torch.manual_seed(0)
    model = structural.make_traceable(models.build("resnet20", 10)).eval()
    structural.prune_to_ratio(model, shape, l1(model), 0.5)
    path = tmp_path / "pruned.pt"
    structural.save_pruned(model, path, "resnet20", 10, shape)
    torch.load(path, weights_only=True)  # plain tensors and values only
    again = structural.load_pruned(path).eval()
    x = torch.randn(2, *shape)
    assert torch.equal(model(x), again(x))
    assert metrics.count_params(again) == metrics.count_params(model)


def test_audit_of_a_residual_network():
    rows = structural.audit(structural.make_traceable(models.build("resnet20", 10)).eval(), (3, 32, 32))
    protected = [r for r in rows if not r["prunable"]]
    assert [r["root"] for r in protected] == ["fc"] and protected[0]["reason"].startswith("output")
    residual = [r for r in rows if r["n_coupled"] > 2]
    assert len(residual) == 3  # one coupled group per stage: the residual stream
    inner = [r for r in rows if r["root"].endswith("conv1") and r["root"] != "conv1"]
    assert len(inner) == 9 and all(r["prunable"] for r in inner)


def test_depthwise_convolutions_stay_coupled_in_mobilenet():
    shape = (3, 64, 64)
    model = models.build("mobilenet_v2", 10, shape).eval()
    structural.prune_to_ratio(model, shape, l1(model), 0.3)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d) and m.groups > 1:
            assert m.groups == m.in_channels == m.out_channels
    assert model(torch.randn(1, *shape)).shape == (1, 10)


ESTIMATED = {
    "resnet20": (3, 32, 32),
    "resnet56": (3, 32, 32),
    "vgg16_cifar": (3, 32, 32),
    "small_cnn": (1, 8, 8),
    "cnn1d": (1, 40),
    "mlp": (1, 40),
    "mobilenet_v2": (3, 32, 32),
}


def _grouped_net():
    """A grouped convolution (2 groups) and a depthwise one between ordinary convolutions, on 3x10x10 inputs."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, groups=2), nn.BatchNorm2d(16),
        nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 1),
        nn.Flatten(), nn.Linear(8 * 6 * 6, 10),
    )  # fmt: skip


def _measured(model, shape):
    return {
        "flops": metrics.flop_count(model, shape)["flops"],
        "params": metrics.count_params(model)["params"],
        "weights": metrics.prunable_weight_count(model),
    }


@pytest.mark.parametrize(
    "allocation, round_to, ratio", [("uniform", None, 0.3), ("global", 8, 0.6), ("global", None, 0.9)]
)
@pytest.mark.parametrize("name", [*ESTIMATED, "grouped"])
def test_estimate_equals_the_measured_flops_params_and_weights(name, allocation, round_to, ratio):
    torch.manual_seed(0)
    shape = ESTIMATED.get(name, (3, 10, 10))
    model = structural.make_traceable(_grouped_net() if name == "grouped" else models.build(name, 10, shape)).eval()
    planner = structural.ChannelPlanner(model, shape, l1(model), allocation, round_to)
    counts = planner.counts(ratio)
    assert planner.estimate([0] * len(counts)) == _measured(model, shape)
    estimate = planner.estimate(counts)
    planner.apply(counts)
    assert estimate == _measured(model, shape)
    assert model(torch.randn(2, *shape)).shape == (2, 10)


def test_removed_channels_are_the_lowest_scored_in_the_given_indexing():
    torch.manual_seed(0)
    model = models.build("small_cnn", 10, (1, 8, 8)).eval()
    norms = model[0].weight.detach().abs().flatten(1).sum(1)
    removed = dict(structural.prune_to_ratio(model, (1, 8, 8), METHODS.get("l1").criterion(model, None), 0.5))
    assert removed["0"] == sorted(norms.argsort()[:16].tolist())
    assert model[0].out_channels == 16


def test_thinet_refuses_global_allocation_in_one_line():
    model = models.build("small_cnn", 10, (1, 8, 8)).eval()
    importance = METHODS.get("thinet").criterion(model, torch.randn(4, 1, 8, 8))
    assert importance.global_comparable is False
    with pytest.raises(ValueError, match="do not compare across groups; use allocation='uniform'") as error:
        structural.prune_to_target(model, (1, 8, 8), importance, ChannelRatio(0.3), "global")
    assert "\n" not in str(error.value)


def test_replay_repeats_a_recorded_removal_on_a_copy():
    shape = (3, 32, 32)
    torch.manual_seed(0)
    model = structural.make_traceable(models.build("resnet20", 10)).eval()
    twin = copy.deepcopy(model)
    removed = structural.prune_to_target(model, shape, l1(model), FlopsReduction(2.0))
    structural.replay(twin, shape, removed)
    x = torch.randn(2, *shape)
    assert torch.equal(model(x), twin(x))
