import copy

import pytest
import torch
import torch_pruning as tp

from workbench import metrics, models
from workbench.pruning import structural

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
    structural.prune_structured(model, shape, l1, structural.Target(flops_reduction=2.0))
    assert dense / metrics.flop_count(model, shape)["flops"] == pytest.approx(2.0, rel=0.03)


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


def test_target_needs_exactly_one_valid_goal():
    with pytest.raises(ValueError, match="exactly one"):
        structural.Target()
    with pytest.raises(ValueError, match="flops_reduction must be >= 1, got 0.5"):
        structural.Target(flops_reduction=0.5)


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
