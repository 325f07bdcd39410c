"""Any model in: torchvision builders by name, ViT, concatenations, auxiliary heads, refusals, targets within 2%."""

import argparse
import json

import pytest
import torch
import torch.nn as nn
from torchvision.models import VisionTransformer

from workbench import bench, metrics, models
from workbench.methods import METHODS
from workbench.pruning import structural
from workbench.targets import FlopsReduction, ParamReduction


def l1(model):
    return METHODS.get("l1").criterion(model)


def _reduction(model, shape, dense):
    return dense / metrics.flop_count(model, shape)["flops"]


def _tiny_vit():
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64,
                             num_classes=10)  # fmt: skip


class _Dense(nn.Module):
    """A DenseNet-like layer: its output is its input concatenated with new features."""

    def __init__(self, channels: int, growth: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, growth, 3, padding=1))

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


def _tiny_densenet():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), _Dense(16, 8), _Dense(24, 8), nn.Conv2d(32, 16, 1), nn.AvgPool2d(2),
        _Dense(16, 8), _Dense(24, 8), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, 10),
    )  # fmt: skip


class _WithAux(nn.Module):
    """Returns (logits, auxiliary logits) in train mode, logits in eval mode, like GoogLeNet."""

    aux_logits = True

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.aux = nn.Sequential(nn.Conv2d(16, 8, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
        self.body = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

    def forward(self, x):
        x = self.stem(x)
        aux = self.aux(x) if self.training else None
        out = self.head(self.body(x))
        return (out, aux) if self.training else out


@pytest.mark.parametrize("name", ["vit", "densenet", "aux"])
def test_small_models_prune_to_a_flops_target_and_run(name):
    torch.manual_seed(0)
    model = {"vit": _tiny_vit, "densenet": _tiny_densenet, "aux": _WithAux}[name]().eval()
    shape = (3, 32, 32)
    dense = metrics.flop_count(model, shape)["flops"]
    structural.prune_to_target(model, shape, l1(model), FlopsReduction(1.6))
    assert 1.6 <= _reduction(model, shape, dense) <= 1.6 * 1.02
    assert model(torch.randn(2, *shape)).shape == (2, 10)
    model.train()
    outputs = model(torch.randn(2, *shape))
    if name == "aux":  # the auxiliary head was pruned with the trunk: train mode runs, and its logits are protected
        assert [o.shape for o in outputs] == [(2, 10), (2, 10)]
        assert model.aux[-1].out_features == 10 and model.aux[0].in_channels == model.stem[0].out_channels < 16


def test_vit_hidden_dim_follows_the_pruned_embedding_and_heads_stay_whole():
    torch.manual_seed(0)
    model, shape = _tiny_vit().eval(), (3, 32, 32)
    structural.prune_to_target(model, shape, l1(model), ParamReduction(2.0))
    attention = model.encoder.layers[0].self_attention
    assert model.hidden_dim == model.conv_proj.out_channels == attention.embed_dim < 32
    assert attention.num_heads == 4 and attention.embed_dim % 4 == 0
    assert model(torch.randn(1, *shape)).shape == (1, 10)


def test_the_estimate_of_a_vit_equals_the_measured_counts():
    torch.manual_seed(0)
    model, shape = _tiny_vit().eval(), (3, 32, 32)
    planner = structural.ChannelPlanner(model, shape, l1(model))
    counts = planner.counts(0.5)
    estimate = planner.estimate(counts)
    planner.apply(counts)
    measured = {"flops": metrics.flop_count(model, shape)["flops"], "params": metrics.count_params(model)["params"],
                "weights": metrics.prunable_weight_count(model)}  # fmt: skip
    assert estimate == measured


def test_resnet56_reaches_2x_flops_within_2_percent():
    shape = (3, 32, 32)
    torch.manual_seed(0)
    model = structural.make_traceable(models.build("resnet56", 10, shape)).eval()
    dense = metrics.flop_count(model, shape)["flops"]
    structural.prune_to_target(model, shape, l1(model), FlopsReduction(2.0))
    assert 2.0 <= _reduction(model, shape, dense) <= 2.0 * 1.02


def test_torchvision_builders_by_name():
    assert "torchvision:densenet121" in models.MODELS and "torchvision:densenet121" not in models.MODELS.names()
    assert models.MODELS.info("torchvision:inception_v3")["input_shape"] == (3, 299, 299)
    model = models.build("torchvision:squeezenet1_1", 10, (3, 64, 64)).eval()
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(ValueError, match="unknown model 'torchvision:nope'"):
        models.MODELS.check("torchvision:nope")


@pytest.mark.parametrize("name", ["shufflenet_v2_x0_5", "swin_t"])
def test_models_torch_pruning_cannot_follow_are_refused_in_one_line(name, monkeypatch):
    model = models.build(f"torchvision:{name}", 10, (3, 64, 64)).eval()
    monkeypatch.setattr(structural, "dependency_graph", lambda *a: pytest.fail("work started before the refusal"))
    with pytest.raises(ValueError, match=r"cannot prune (ShuffleNetV2|SwinTransformer)") as error:
        structural.prune_to_target(model, (3, 64, 64), l1(model), FlopsReduction(2.0))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="cannot prune"):
        structural.audit(model, (3, 64, 64))


def test_an_unreachable_tolerance_is_said_in_one_line():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    shape = (3, 8, 8)
    with pytest.warns(UserWarning, match=r"cannot be reached within 2% with round_to 4: nearest achievable") as seen:
        structural.prune_to_target(model, shape, l1(model), FlopsReduction(1.3), round_to=4)
    assert "\n" not in str(seen[0].message)


def test_bench_models_prints_both_tools_per_model(capsys, monkeypatch):
    from workbench import bench_models

    calls = []  # each tool runs in a process of its own; here in this one, to keep the test fast
    run = lambda name, tool, options, timeout: calls.append(tool) or bench_models.run_one(name, tool, **options)  # noqa: E731
    monkeypatch.setattr(bench_models, "run_in_process", run)
    parser = argparse.ArgumentParser()
    bench.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", "models", "--models", "squeezenet1_1", "--json", "--timeout", "60"])
    assert args.handler(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    row, totals = lines[0], lines[-1]["totals"]
    assert row["model"] == "squeezenet1_1" and row["tp"]["status"] == "ok" and row["workbench"]["status"] == "ok"
    assert row["within_tolerance"] and row["workbench"]["seconds"] > 0 and row["tp"]["seconds"] > 0
    assert totals["models"] == 1 and totals["tp_only"] == [] and calls == ["tp", "workbench"]
