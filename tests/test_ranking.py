import functools
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch_pruning as tp

import workbench.pruning.ranking as ranking  # registers the filter-ranking methods
from workbench import metrics, models
from workbench.pruning import METHODS, structural

RANKING = METHODS.names(family="filter-ranking")
DATA = METHODS.names(family="filter-ranking", needs_data=True)
BIB = Path(__file__).resolve().parents[1] / "literature" / "references.bib"


def _groups(model, example, ignored=()):
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    return list(graph.get_all_groups(ignored_layers=list(ignored), root_module_types=[nn.Conv2d, nn.Linear]))


def _root_group(model, example, layer):
    """The group whose root pruning operation removes output channels of `layer`."""
    return next(g for g in _groups(model, example) if g[0].dep.target.module is layer)


def _conv(in_channels, out_channels, weight, kernel_size=1):
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(weight, dtype=torch.float32).view_as(conv.weight))
    return conv


def _identity_model(channels=2):
    """conv (identity 1x1) -> ReLU -> conv: the first conv's channels are the input channels after ReLU."""
    return nn.Sequential(_conv(channels, channels, torch.eye(channels)), nn.ReLU(), nn.Conv2d(channels, 1, 1))


class Twin(nn.Module):
    """Two producers a and b whose outputs are added: their channels form one coupled group."""

    def __init__(self, a, b):
        super().__init__()
        self.a, self.b, self.head = _conv(1, 2, a), _conv(1, 2, b), nn.Conv2d(2, 1, 1)

    def forward(self, x):
        return self.head(torch.relu(self.a(x) + self.b(x)))


def test_methods_are_registered_with_info_and_known_bib_keys():
    assert {"apoz", "fpgm", "hrank", "l1", "l2", "random_filter", "thinet"} <= set(RANKING)
    assert {"apoz", "hrank", "thinet"} <= set(DATA) and not {"l1", "l2", "fpgm", "random_filter"} & set(DATA)
    bib = BIB.read_text(encoding="utf-8")
    for name in RANKING:
        info = METHODS.info(name)
        assert info["granularity"] == "filter" and info["structural"] is True and info["summary"]
        assert re.search(r"@\w+\{" + re.escape(info["cite"]) + ",", bib), info["cite"]


def test_l1_and_l2_score_the_filters_of_the_layer_only():
    conv = _conv(1, 3, [[3, 0, 0, 0], [1, 1, 1, 1], [0.5, 0.5, 0, 0]], kernel_size=2)
    bn = nn.BatchNorm2d(3)
    nn.init.constant_(bn.weight, 7.0)  # neither batch-norm scales nor the next conv's weights are aggregated
    model = nn.Sequential(conv, bn, nn.ReLU(), nn.Conv2d(3, 2, 1))
    group = _root_group(model, torch.randn(1, 1, 4, 4), conv)
    l1 = METHODS.get("l1")(model, None)(group)
    l2 = METHODS.get("l2")(model, None)(group)
    assert torch.allclose(l1, torch.tensor([3.0, 4.0, 1.0]))
    assert torch.allclose(l2, torch.tensor([9.0, 4.0, 0.5]))  # squared L2 norms
    assert l1.argsort().tolist() == [2, 0, 1] and l2.argsort().tolist() == [2, 1, 0]


def test_weight_criteria_average_the_producers_of_a_coupled_group():
    model = Twin(a=[1.0, 2.0], b=[3.0, 0.0])
    group = _root_group(model, torch.randn(1, 1, 4, 4), model.a)
    assert len(ranking.producers(group)) == 2
    assert torch.allclose(METHODS.get("l1")(model, None)(group), torch.tensor([2.0, 1.0]))


def test_fixed_producers_such_as_option_a_shortcuts_are_left_out_of_the_average():
    model = Twin(a=[1.0, 2.0], b=[1.0, 0.0])
    model.b.weight.requires_grad_(False)
    group = _root_group(model, torch.randn(1, 1, 4, 4), model.a)
    assert torch.allclose(METHODS.get("l1")(model, None)(group), torch.tensor([1.0, 2.0]))


def test_fpgm_prunes_the_filter_nearest_the_geometric_median_not_the_smallest():
    conv = _conv(1, 5, [1.0, 2.0, 3.0, 4.0, 30.0])
    model = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(5, 1, 1))
    group = _root_group(model, torch.randn(1, 1, 4, 4), conv)
    scores = METHODS.get("fpgm")(model, None)(group)
    assert torch.allclose(scores, torch.tensor([35.0, 32.0, 31.0, 32.0, 110.0]))  # sums of |w_i - w_j|
    assert int(scores.argmin()) == 2
    assert int(METHODS.get("l1")(model, None)(group).argmin()) == 0


def test_fpgm_keeps_the_sign_of_filters():
    conv = _conv(1, 4, [-1.0, 0.0, 1.0, 1.0])  # w and -w are far apart, unlike distances between |w|
    model = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(4, 1, 1))
    scores = METHODS.get("fpgm")(model, None)(_root_group(model, torch.randn(1, 1, 4, 4), conv))
    assert torch.allclose(scores, torch.tensor([5.0, 3.0, 3.0, 3.0]))


def test_hrank_scores_rank_one_maps_below_full_rank_maps():
    torch.manual_seed(0)
    n = 8
    rank_one = torch.rand(n, 6, 1) @ torch.rand(n, 1, 6)  # outer products, positive so ReLU keeps them
    full = torch.rand(n, 6, 6)
    calibration = torch.stack([rank_one, full], 1)
    model = _identity_model()
    importance = METHODS.get("hrank")(model, calibration)
    scores = importance(_root_group(model, calibration[:1], model[0]))
    assert torch.allclose(scores, torch.tensor([1.0, 6.0]))


def test_apoz_scores_a_channel_that_is_always_zero_after_relu_lowest():
    torch.manual_seed(0)
    calibration = torch.stack([-torch.rand(32, 5, 5), torch.randn(32, 5, 5)], 1)
    model = _identity_model()
    scores = METHODS.get("apoz")(model, calibration)(_root_group(model, calibration[:1], model[0]))
    assert scores[0] == 0 and 0.4 < scores[1] < 0.6  # 1 - APoZ; about half of N(0, 1) is positive


def test_activation_criteria_measure_a_coupled_group_after_the_addition():
    model = Twin(a=[1.0, 1.0], b=[1.0, -3.0])  # a(x) + b(x) = (2x, -2x): channel 1 is always zero after ReLU
    calibration = torch.rand(16, 1, 4, 4)  # while b's own channel 0 and a's channels are all positive
    group = _root_group(model, calibration[:1], model.a)
    assert torch.allclose(METHODS.get("apoz")(model, calibration)(group), torch.tensor([1.0, 0.0]))


def test_thinet_removes_a_channel_without_contribution_first_and_cancelling_channels_together():
    # Channels 0, 1, 3 carry relu(x), channel 2 carries relu(-x) (disjoint support); the next conv weighs them
    # 0.5, -1, 0.6, 0. By hand: T = {3} (zero contribution), then {3, 0} (0.25 |X|^2 < 0.36 |Y|^2), then channel 1,
    # since 0.5 X - X leaves 0.25 |X|^2 whereas adding channel 2 leaves 0.25 |X|^2 + 0.36 |Y|^2. Channel 1 has the
    # largest contribution, so a per-channel norm would remove it last.
    model = nn.Sequential(_conv(1, 4, [1.0, 1.0, -1.0, 1.0]), nn.ReLU(), _conv(4, 1, [0.5, -1.0, 0.6, 0.0]))
    torch.manual_seed(0)
    calibration = torch.randn(64, 1, 6, 6)
    scores = METHODS.get("thinet")(model, calibration)(_root_group(model, calibration[:1], model[0]))
    assert scores.tolist() == [1.0, 2.0, 3.0, 0.0]


@pytest.mark.parametrize(
    "layer, shape",
    [
        (nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), (2, 4, 9, 9)),
        (nn.Conv2d(3, 5, (3, 2), padding="same", padding_mode="reflect"), (2, 3, 6, 7)),
        (nn.Conv1d(3, 4, 5, stride=2, padding=1), (2, 3, 11)),
        (nn.Linear(7, 3), (4, 7)),
    ],
)
def test_thinet_contributions_add_up_to_the_layer_output(layer, shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    with torch.no_grad():
        output = layer(x)
        index = tuple(i.flatten() for i in torch.meshgrid(*(torch.arange(d) for d in output.shape), indexing="ij"))
        shares = ranking.contributions(layer, x, index)
    assert shares.shape == (output.numel(), x.shape[1])
    assert torch.allclose(shares.sum(1), output[index] - layer.bias[index[1]], atol=1e-5)


def test_greedy_removal_order_minimises_the_accumulated_contribution():
    contributions = torch.tensor([[0.5, -1.0, 0.0, 0.0], [0.5, -1.0, 0.8, 0.0]])  # rows: samples
    assert ranking.greedy_removal_order(contributions).tolist() == [1, 2, 3, 0]


def test_random_filter_scores_follow_torch_manual_seed():
    model = models.build("small_cnn", 10, (1, 8, 8))
    group = _root_group(model, torch.randn(1, 1, 8, 8), model[0])
    importance = METHODS.get("random_filter")(model, None)
    torch.manual_seed(0)
    first = importance(group)
    torch.manual_seed(0)
    assert torch.equal(importance(group), first)
    torch.manual_seed(1)
    assert not torch.equal(importance(group), first)


@pytest.mark.parametrize("name", DATA)
def test_data_dependent_methods_reject_missing_calibration(name):
    model = models.build("small_cnn", 10, (1, 8, 8))
    with pytest.raises(ValueError, match="calibration") as error:
        METHODS.get(name)(model, None)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", DATA)
def test_calibration_leaves_no_hooks_and_keeps_the_model_state(name):
    torch.manual_seed(0)
    model = models.build("small_cnn", 10, (1, 8, 8)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    METHODS.get(name)(model, torch.randn(8, 1, 8, 8))
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


CASES = {
    "small_cnn": ((1, 8, 8), lambda model: model[-1]),
    "resnet18": ((3, 32, 32), lambda model: model.fc),
}


@functools.cache
def _dense_flops(model_name):
    shape = CASES[model_name][0]
    return metrics.flop_count(models.build(model_name, 10, shape), shape)["flops"]


@pytest.mark.parametrize("model_name", list(CASES))
@pytest.mark.parametrize("name", RANKING)
def test_scores_every_group_and_prunes_with_metapruner(name, model_name):
    shape, classifier = CASES[model_name]
    torch.manual_seed(0)
    model = models.build(model_name, 10, shape)
    calibration = torch.randn(8, *shape)
    importance = METHODS.get(name)(model, calibration)
    ignored = [classifier(model)]
    pruner = tp.pruner.MetaPruner(
        model, calibration[:1], importance=importance, pruning_ratio=0.5, ignored_layers=ignored
    )
    for group in pruner.DG.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]):
        scores = importance(group)
        assert scores.shape == (len(group[0].idxs),) and torch.isfinite(scores).all()
    pruner.step()
    assert model(calibration).shape == (8, 10)
    assert metrics.flop_count(model, shape)["flops"] < 0.6 * _dense_flops(model_name)


@pytest.mark.parametrize("name", RANKING)
def test_scores_every_group_of_a_traceable_cifar_resnet(name):
    torch.manual_seed(0)
    model = structural.make_traceable(models.build("resnet20", 10, (3, 32, 32)))
    calibration = torch.randn(8, 3, 32, 32)
    importance = METHODS.get(name)(model, calibration)
    groups = _groups(model, calibration[:1], [model.fc])
    assert any(len(ranking.all_producers(g)) > 2 for g in groups)  # residual stages are coupled groups
    for group in groups:
        scores = importance(group)
        assert scores.shape == (len(group[0].idxs),) and torch.isfinite(scores).all()


@pytest.mark.parametrize("name", DATA)
def test_statistics_are_recollected_between_iterative_steps(name):
    torch.manual_seed(0)
    model = models.build("small_cnn", 10, (1, 8, 8))
    calibration = torch.randn(8, 1, 8, 8)
    importance = METHODS.get(name)(model, calibration)
    pruner = tp.pruner.MetaPruner(
        model, calibration[:1], importance=importance, pruning_ratio=0.5, iterative_steps=2, ignored_layers=[model[-1]]
    )
    for _ in range(2):
        pruner.step()
    assert model[0].out_channels == 16 and model(calibration).shape == (8, 10)
