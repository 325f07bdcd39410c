import pytest
import torch

from workbench import metrics, models

SMALL_INPUT = {"small_cnn": (1, 8, 8), "cnn1d": (1, 40), "mlp": (1, 40)}


@pytest.mark.parametrize("name", models.MODELS.names())
def test_every_registered_model_builds_and_runs(name):
    shape = SMALL_INPUT.get(name, (3, 32, 32))
    model = models.build(name, num_classes=7, input_shape=shape).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7)


@pytest.mark.parametrize(
    ("name", "params", "macs"),
    [
        ("resnet20", 0.27e6, 40.6e6),  # He et al. 2016: 0.27M parameters
        ("resnet56", 0.85e6, 125.5e6),  # 0.85M parameters, 125.5M MACs (the pruning papers' "FLOPs")
        ("resnet110", 1.7e6, 252.9e6),  # 1.7M parameters
    ],
)
def test_published_sizes_of_cifar_resnets(name, params, macs):
    model = models.build(name, 10, (3, 32, 32))
    counted = metrics.count_params(model)["params"]
    flops = metrics.flop_count(model, (3, 32, 32))
    assert counted == pytest.approx(params, rel=0.02)
    assert flops["macs"] == pytest.approx(macs, rel=0.002)
    assert flops["flops"] == 2 * flops["macs"]


def test_resnet56_exact_counts():
    model = models.build("resnet56", 10, (3, 32, 32))
    assert round(metrics.count_params(model)["params"] / 1e6, 2) == 0.85
    assert round(metrics.flop_count(model, (3, 32, 32))["macs"] / 1e6, 1) == 125.5


def test_option_a_shortcut_has_no_parameters():
    model = models.build("resnet56", 10)
    shortcut = model.layer2[0].shortcut
    assert sum(p.numel() for p in shortcut.parameters()) == 0
    assert shortcut(torch.randn(1, 16, 32, 32)).shape == (1, 32, 16, 16)


def test_torchvision_weights_load_from_a_local_file(tmp_path):
    model = models.build("resnet18", 10, (3, 32, 32))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    again = models.build("resnet18", 10, (3, 32, 32), weights_file=str(tmp_path / "w.pt"))
    assert torch.equal(again.fc.weight, model.fc.weight)
