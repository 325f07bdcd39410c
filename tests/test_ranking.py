import copy
import functools
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch_pruning as tp

import workbench.pruning.ranking as ranking
from workbench import metrics, models
from workbench.methods import METHODS
from workbench.pruning import structural
from workbench.targets import ChannelRatio
from workbench.torchutil import hooks

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
    l1 = METHODS.get("l1").criterion(model, None)(group)
    l2 = METHODS.get("l2").criterion(model, None)(group)
    assert torch.allclose(l1, torch.tensor([3.0, 4.0, 1.0]))
    assert torch.allclose(l2, torch.tensor([9.0, 4.0, 0.5]))  # squared L2 norms
    assert l1.argsort().tolist() == [2, 0, 1] and l2.argsort().tolist() == [2, 1, 0]


def test_weight_criteria_average_the_producers_of_a_coupled_group():
    model = Twin(a=[1.0, 2.0], b=[3.0, 0.0])
    group = _root_group(model, torch.randn(1, 1, 4, 4), model.a)
    assert len(ranking.producers(group)) == 2
    assert torch.allclose(METHODS.get("l1").criterion(model, None)(group), torch.tensor([2.0, 1.0]))


def test_fixed_producers_such_as_option_a_shortcuts_are_left_out_of_the_average():
    model = Twin(a=[1.0, 2.0], b=[1.0, 0.0])
    model.b.weight.requires_grad_(False)
    group = _root_group(model, torch.randn(1, 1, 4, 4), model.a)
    assert torch.allclose(METHODS.get("l1").criterion(model, None)(group), torch.tensor([1.0, 2.0]))


def test_fpgm_prunes_the_filter_nearest_the_geometric_median_not_the_smallest():
    conv = _conv(1, 5, [1.0, 2.0, 3.0, 4.0, 30.0])
    model = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(5, 1, 1))
    group = _root_group(model, torch.randn(1, 1, 4, 4), conv)
    scores = METHODS.get("fpgm").criterion(model, None)(group)
    assert torch.allclose(scores, torch.tensor([35.0, 32.0, 31.0, 32.0, 110.0]))  # sums of |w_i - w_j|
    assert int(scores.argmin()) == 2
    assert int(METHODS.get("l1").criterion(model, None)(group).argmin()) == 0


def test_fpgm_keeps_the_sign_of_filters():
    conv = _conv(1, 4, [-1.0, 0.0, 1.0, 1.0])  # w and -w are far apart, unlike distances between |w|
    model = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(4, 1, 1))
    scores = METHODS.get("fpgm").criterion(model, None)(_root_group(model, torch.randn(1, 1, 4, 4), conv))
    assert torch.allclose(scores, torch.tensor([5.0, 3.0, 3.0, 3.0]))


def test_hrank_scores_rank_one_maps_below_full_rank_maps():
    torch.manual_seed(0)
    n = 8
    rank_one = torch.rand(n, 6, 1) @ torch.rand(n, 1, 6)  # outer products, positive so ReLU keeps them
    full = torch.rand(n, 6, 6)
    calibration = torch.stack([rank_one, full], 1)
    model = _identity_model()
    importance = METHODS.get("hrank").criterion(model, calibration)
    scores = importance(_root_group(model, calibration[:1], model[0]))
    assert torch.allclose(scores, torch.tensor([1.0, 6.0]))


def test_apoz_scores_a_channel_that_is_always_zero_after_relu_lowest():
    torch.manual_seed(0)
    calibration = torch.stack([-torch.rand(32, 5, 5), torch.randn(32, 5, 5)], 1)
    model = _identity_model()
    scores = METHODS.get("apoz").criterion(model, calibration)(_root_group(model, calibration[:1], model[0]))
    assert scores[0] == 0 and 0.4 < scores[1] < 0.6  # 1 - APoZ; about half of N(0, 1) is positive


def test_activation_criteria_measure_a_coupled_group_after_the_addition():
    model = Twin(a=[1.0, 1.0], b=[1.0, -3.0])  # a(x) + b(x) = (2x, -2x): channel 1 is always zero after ReLU
    calibration = torch.rand(16, 1, 4, 4)  # while b's own channel 0 and a's channels are all positive
    group = _root_group(model, calibration[:1], model.a)
    assert torch.allclose(METHODS.get("apoz").criterion(model, calibration)(group), torch.tensor([1.0, 0.0]))


def test_thinet_removes_a_channel_without_contribution_first_and_cancelling_channels_together():
    # Channels 0, 1, 3 carry relu(x), channel 2 carries relu(-x) (disjoint support); the next conv weighs them
    # 0.5, -1, 0.6, 0. By hand: T = {3} (zero contribution), then {3, 0} (0.25 |X|^2 < 0.36 |Y|^2), then channel 1,
    # since 0.5 X - X leaves 0.25 |X|^2 whereas adding channel 2 leaves 0.25 |X|^2 + 0.36 |Y|^2. Channel 1 has the
    # largest contribution, so a per-channel norm would remove it last.
    model = nn.Sequential(_conv(1, 4, [1.0, 1.0, -1.0, 1.0]), nn.ReLU(), _conv(4, 1, [0.5, -1.0, 0.6, 0.0]))
    torch.manual_seed(0)
    calibration = torch.randn(64, 1, 6, 6)
    scores = METHODS.get("thinet").criterion(model, calibration)(_root_group(model, calibration[:1], model[0]))
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


def test_random_filter_scores_follow_the_run_seed_only():
    model = models.build("small_cnn", 10, (1, 8, 8))
    group = _root_group(model, torch.randn(1, 1, 8, 8), model[0])
    first = METHODS.get("random_filter").criterion(model, seed=0)(group)
    torch.manual_seed(123)  # the global generator does not matter
    assert torch.equal(METHODS.get("random_filter").criterion(model, seed=0)(group), first)
    assert not torch.equal(METHODS.get("random_filter").criterion(model, seed=1)(group), first)


@pytest.mark.parametrize("name", DATA)
def test_data_dependent_methods_reject_missing_calibration(name):
    model = models.build("small_cnn", 10, (1, 8, 8))
    with pytest.raises(ValueError, match="calibration") as error:
        METHODS.get(name).criterion(model, None)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", DATA)
def test_calibration_leaves_no_hooks_and_keeps_the_model_state(name):
    torch.manual_seed(0)
    model = models.build("small_cnn", 10, (1, 8, 8)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    METHODS.get(name).criterion(model, torch.randn(8, 1, 8, 8))
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
    importance = METHODS.get(name).criterion(model, calibration)
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
    importance = METHODS.get(name).criterion(model, calibration)
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
    importance = METHODS.get(name).criterion(model, calibration)
    pruner = tp.pruner.MetaPruner(
        model, calibration[:1], importance=importance, pruning_ratio=0.5, iterative_steps=2, ignored_layers=[model[-1]]
    )
    for _ in range(2):
        pruner.step()
    assert model[0].out_channels == 16 and model(calibration).shape == (8, 10)


def _stream_tensors(model, stage):
    """Ids of the tensors on a CIFAR ResNet stage's residual stream: its blocks' outputs, and for stage 1 its input."""
    seen, keep = [], []

    def record(tensor):
        seen.append(id(tensor))
        keep.append(tensor)

    layer = getattr(model, f"layer{stage}")
    registrations = [lambda b=b: b.register_forward_hook(lambda m, i, o: record(o)) for b in layer]
    if stage == 1:
        registrations.append(lambda: layer.register_forward_pre_hook(lambda m, args: record(args[0])))
    return seen, keep, registrations


def _site_tensors(sites):
    seen, keep = [], []

    def record(tensor):
        seen.append(id(tensor))
        keep.append(tensor)

    def register(side, module):
        if side == "in":
            return module.register_forward_pre_hook(lambda m, args: record(args[0]))
        return module.register_forward_hook(lambda m, i, o: record(o))

    return seen, keep, [lambda s=s: register(*s) for s in sites]


@pytest.mark.parametrize("name", ["hrank", "apoz"])
def test_activation_criteria_measure_every_stream_tensor_of_a_residual_group_once(name):
    torch.manual_seed(0)
    model = structural.make_traceable(models.build("resnet20", 10, (3, 32, 32))).eval()
    calibration = torch.randn(4, 3, 32, 32)
    importance = METHODS.get(name).criterion(model, calibration)
    residual = [g for g in _groups(model, calibration[:1], [model.fc]) if len(ranking.all_producers(g)) > 2]
    assert len(residual) == 3
    for group in residual:
        producers = {item.dep.target.module for item in ranking.all_producers(group)}
        stage = next(s for s in (1, 2, 3) if producers & set(getattr(model, f"layer{s}").modules()))
        stream, keep_stream, stream_hooks = _stream_tensors(model, stage)
        measured, keep_measured, site_hooks = _site_tensors([site for site, _ in importance.sites(group)])
        with torch.no_grad(), hooks(stream_hooks + site_hooks):
            model(calibration[:1])
        assert len(stream) == (4 if stage == 1 else 3)
        assert sorted(measured) == sorted(stream)  # each stream tensor once: none twice, none missing


def test_activation_criteria_leave_out_fixed_consumers_and_read_the_map_before_pooling():
    torch.manual_seed(0)
    model = structural.make_traceable(models.build("resnet20", 10, (3, 32, 32))).eval()
    importance = METHODS.get("apoz").criterion(model, torch.randn(4, 3, 32, 32))
    sites = {module for group in _groups(model, torch.zeros(1, 3, 32, 32), [model.fc]) for (_, module), _ in
             importance.sites(group)}  # fmt: skip
    assert not any(isinstance(m, structural.SelectShortcut) for m in sites)
    assert model.layer3[-1] in sites and model.fc not in sites  # the last block's output, not the pooled vector


def test_thinet_least_squares_rescaling_reconstructs_a_removed_channel_proportional_to_a_kept_one():
    # Channels 0 and 1 both carry relu(x); the consumer weighs them 1 and 0.1, channel 2 (relu(-x)) 1. ThiNet removes
    # channel 1 first; rescaling channel 0 by 1.1 restores the consumer's output exactly, plain removal does not.
    dense = nn.Sequential(_conv(1, 3, [1.0, 1.0, -1.0]), nn.ReLU(), _conv(3, 1, [1.0, 0.1, 1.0])).eval()
    torch.manual_seed(0)
    calibration = torch.randn(16, 1, 4, 4)
    errors = {}
    for rescale in (False, True):
        model = copy.deepcopy(dense)
        importance = METHODS.get("thinet").criterion(model, calibration, rescale=rescale)
        removed = structural.prune_to_target(model, (1, 4, 4), importance, ChannelRatio(0.3))
        assert removed == [("0", [1])]
        with torch.no_grad():
            errors[rescale] = float((model(calibration) - dense(calibration)).pow(2).sum())
    assert errors[True] < 1e-10 < 1e-3 < errors[False]


def test_thinet_rescaling_does_not_increase_the_consumers_reconstruction_error():
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    calibration = torch.randn(32, 3, 4, 4)
    errors, chosen = {}, {}
    for rescale in (False, True):
        model = copy.deepcopy(dense)
        importance = METHODS.get("thinet").criterion(model, calibration, samples_per_image=200, rescale=rescale)
        chosen[rescale] = structural.prune_to_target(model, (3, 4, 4), importance, ChannelRatio(0.5))
        with torch.no_grad():
            errors[rescale] = float((model(calibration) - dense(calibration)).pow(2).sum())
    assert chosen[True] == chosen[False]  # rescaling changes the kept weights, not which channels go
    assert errors[True] <= errors[False]


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("hrank", {"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ("apoz", {"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
        ("thinet", {"samples_per_image": 0}, "samples_per_image must be an integer >= 1, got 0"),
        ("thinet", {"seed": -1}, "seed must be an integer >= 0, got -1"),
        ("thinet", {"rescale": "yes"}, "rescale must be True or False, got 'yes'"),
    ],
)
def test_hyperparameters_are_validated_keywords(name, kwargs, message):
    model = models.build("small_cnn", 10, (1, 8, 8))
    with pytest.raises(ValueError, match=re.escape(message)):
        METHODS.get(name).criterion(model, torch.randn(4, 1, 8, 8), **kwargs)
