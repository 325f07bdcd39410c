"""The automated family: budgets met by every searcher's candidates, the latency lookup table, resumable Optuna
studies, AMC's environment (action wall, reward) on hand-built cases, the pipeline's records and bad input."""

import copy
import tempfile

import numpy as np
import pytest
import torch
import torch.nn as nn

from workbench import checks, metrics, models, training
from workbench import data as wdata
from workbench.search import amc, eagleeye, evolution, latency_table, netadapt, studies
from workbench.search.proxy import Evaluator, adaptive_bn
from workbench.search.space import SearchSpace
from workbench.targets import FlopsReduction, LatencyBudget

pytestmark = pytest.mark.builds_models


@pytest.fixture(scope="module")
def digits():
    bundle = wdata.load("digits")
    return bundle, wdata.calibration_batch(bundle, 120, split="val"), wdata.calibration_batch(bundle, 128)[0]


def small(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.build("small_cnn", 10, (1, 8, 8)).eval()


def space_of(model, reduction=2.0, **kw) -> SearchSpace:
    return SearchSpace(model, (1, 8, 8), FlopsReduction(reduction), kw.pop("round_to", None), kw.pop("max", 0.8), **kw)


def evaluator(digits, mode="adaptive_bn", steps=0):
    bundle, val, calib = digits

    def finetune(model, n):
        training.train(model, bundle.train, batch_size=64, lr=0.01, momentum=0.9, weight_decay=0.0,
                       total_steps=n, seed=3, desc="test")  # fmt: skip

    return Evaluator(val, calib, mode, finetune, steps)


def study(name: str, directions=("maximize",), url=""):
    return studies.open_study(name, url, list(directions))


class Stop(Exception):
    """Stands for a killed process."""


def stop_after(n: int):
    def after(s):
        if len(studies.completed(s)) == n:
            raise Stop

    return after


def flops_of(space: SearchSpace, counts) -> int:
    return metrics.flop_count(space.candidate(counts), (1, 8, 8))["flops"]


# --- the space -------------------------------------------------------------------------------------------------


def test_projected_candidates_meet_the_budget_and_spend_most_of_it():
    space = space_of(small(), 3.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        counts = space.project(rng.random(len(space)))
        assert space.fits(counts)
        assert flops_of(space, counts) == space.flops(counts) <= space.budget.limit
        assert space.flops(counts) > 0.9 * space.budget.limit  # small_cnn's units allow this much of the budget
    assert space.from_kept(space.kept([3, 5, 7])) == [3, 5, 7]


def test_flops_budgets_divide_the_original_models_flops_not_its_traceable_forms():
    torch.manual_seed(0)
    model = models.build("resnet20", 10, (1, 8, 8))
    dense = metrics.flop_count(model, (1, 8, 8))["flops"]
    space = SearchSpace(model, (1, 8, 8), FlopsReduction(2.0), None, 0.8)
    assert space.budget.limit == dense / 2  # option-A shortcuts count nothing; made traceable, they would
    counts = space.project([1.0] * len(space))
    assert metrics.flop_count(space.candidate(counts), (1, 8, 8))["flops"] <= dense / 2


def test_an_unreachable_budget_and_a_latency_budget_above_dense_fail_in_one_line():
    with pytest.raises(checks.ConfigError, match=r"budget flops_reduction=100 is out of reach: removing 0.8 of every"):
        space_of(small(), 100.0).check_reachable()
    kinds = "flops_reduction, latency_ms, latency_fraction"
    with pytest.raises(checks.ConfigError, match=f"automated search takes a {kinds} budget"):
        SearchSpace(small(), (1, 8, 8), checks_target_sparsity())


def checks_target_sparsity():
    from workbench.targets import Sparsity

    return Sparsity(0.5)


# --- the latency lookup table ----------------------------------------------------------------------------------


def test_layer_table_interpolates_bilinearly_and_is_exact_on_the_grid():
    table = latency_table.LayerTable([2, 4], [10, 20], [[1.0, 2.0], [3.0, 5.0]])
    assert table.at(2, 10) == 1.0 and table.at(4, 20) == 5.0
    assert table.at(3, 15) == pytest.approx((1 + 2 + 3 + 5) / 4)
    assert table.at(3, 10) == pytest.approx(2.0)
    assert table.at(100, 100) == 5.0 and table.at(0, 0) == 1.0  # clamped
    assert latency_table.grid(2, 10, 5) == [2, 4, 6, 8, 10]
    assert latency_table.grid(7, 7, 5) == [7]


def test_latency_table_predicts_both_measured_ends_exactly_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    space = SearchSpace(small(), (1, 8, 8), LatencyBudget(1e6, batch_size=8), None, 0.8, table_points=3)
    table = space.table
    dense = space.planner.widths([0] * len(space))
    narrow = space.planner.widths(space.most_removed())
    assert table.predict(dense) == pytest.approx(table.dense_ms)
    if table.rest[1] > 0:  # a negative fitted slope (noise) is set flat; then only the dense end is exact
        assert table.predict(narrow) == pytest.approx(table.narrow_ms)
    assert set(table.layers) == set(dense)
    again = latency_table.LatencyTable.from_json(table.to_json())
    assert again.predict(narrow) == table.predict(narrow)
    files = list((tmp_path / "latency-tables").glob("*.json"))
    assert len(files) == 1
    cached = SearchSpace(small(), (1, 8, 8), LatencyBudget(1e6, batch_size=8), None, 0.8, table_points=3).table
    assert cached.predict(narrow) == table.predict(narrow)  # read back, not measured again


# --- searchers: budgets, resuming ------------------------------------------------------------------------------


def test_eagleeye_candidates_meet_the_budget_and_a_stopped_search_resumes_exactly(digits):
    full = eagleeye.search(space_of(small()), evaluator(digits), study("ee-full"), 6, seed=1)
    assert all(t["candidate"]["cost"] <= full.trials[0]["candidate"]["cost"] * 10 for t in full.trials)
    space = space_of(small())
    for t in full.trials:
        assert t["candidate"]["flops"] <= space.budget.limit
    assert space.fits(full.counts)
    with pytest.raises(Stop):
        eagleeye.search(space_of(small()), evaluator(digits), study("ee-stop"), 6, seed=1, after=stop_after(3))
    again = evaluator(digits)
    resumed = eagleeye.search(space_of(small()), again, study("ee-stop"), 6, seed=1)
    assert again.evaluated == 3  # only the missing candidates
    assert [t["candidate"] for t in resumed.trials] == [t["candidate"] for t in full.trials]
    assert [t["proxy_top1"] for t in resumed.trials] == [t["proxy_top1"] for t in full.trials]
    assert resumed.counts == full.counts


def test_a_shared_storage_url_is_continued_by_a_second_worker(digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = evaluator(digits)
    eagleeye.search(space_of(small()), first, study("shared", url=url), 4, seed=2)
    second = evaluator(digits)
    out = eagleeye.search(space_of(small()), second, study("shared", url=url), 6, seed=2)
    assert (first.evaluated, second.evaluated, len(out.trials)) == (4, 2, 6)


def test_nsga2_returns_a_candidate_within_the_budget_and_resumes_exactly(digits):
    full = evolution.search(space_of(small(), 3.0), evaluator(digits), study("ev-full", ("maximize", "minimize")), 4, 2,
                            seed=0)  # fmt: skip
    space = space_of(small(), 3.0)
    assert space.fits(full.counts) and flops_of(space, full.counts) <= space.budget.limit
    assert full.extra["pareto"] and set(full.extra["pareto"]) <= {t["trial"] for t in full.trials}
    with pytest.raises(Stop):
        evolution.search(space_of(small(), 3.0), evaluator(digits), study("ev-stop", ("maximize", "minimize")), 4, 2,
                         seed=0, after=stop_after(5))  # fmt: skip
    resumed = evolution.search(space_of(small(), 3.0), evaluator(digits), study("ev-stop", ("maximize", "minimize")),
                               4, 2, seed=0)  # fmt: skip
    assert [t["candidate"]["kept"] for t in resumed.trials] == [t["candidate"]["kept"] for t in full.trials]
    assert resumed.counts == full.counts


def test_pareto_front_on_a_hand_built_case():
    trials = [{"trial": i, "proxy_top1": a, "candidate": {"cost": c}} for i, (a, c) in
              enumerate([(0.9, 10), (0.8, 5), (0.85, 12), (0.8, 6), (0.95, 20)])]  # fmt: skip
    assert evolution.pareto_front(trials) == [0, 1, 4]


def test_netadapt_meets_the_budget_step_by_step_and_resumes_exactly(digits):
    model = small()
    full = netadapt.search(space_of(model, 2.0), evaluator(digits, "finetune", 3), study("na-full"), iterations=2)
    space = space_of(small(), 2.0)
    assert space.fits(full.counts)
    assert full.extra["iterations"] >= 2
    network, removed = full.extra["network"], full.extra["removed"]
    from workbench.pruning import structural

    replayed = structural.make_traceable(small())
    structural.replay(replayed, (1, 8, 8), removed)
    replayed.load_state_dict(network.state_dict())  # same shapes: the removals describe the network
    assert metrics.flop_count(replayed, (1, 8, 8))["flops"] == space.flops(full.counts) <= space.budget.limit
    per_iteration = {}
    for t in full.trials:
        per_iteration.setdefault(t["iteration"], []).append(t["candidate"]["cost"])
        assert t["candidate"]["cost"] <= t["step_limit"] * (1 + 1e-12)
    assert len(per_iteration) == full.extra["iterations"]
    with pytest.raises(Stop):
        netadapt.search(space_of(small(), 2.0), evaluator(digits, "finetune", 3), study("na-stop"), 2,
                        after=stop_after(4))  # fmt: skip
    again = evaluator(digits, "finetune", 3)
    resumed = netadapt.search(space_of(small(), 2.0), again, study("na-stop"), 2)
    assert resumed.counts == full.counts
    assert again.evaluated == len(full.trials) - 4
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(resumed.extra["network"].eval()(x), full.extra["network"].eval()(x))


# --- AMC -------------------------------------------------------------------------------------------------------


def tiny() -> nn.Sequential:
    """1x1 convs on a 1x1 input: FLOPs = 2*c1 + 2*c1*c2 + 2*c2*2 (flop_counter: 2 per multiply-add)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 10, 1, bias=False), nn.ReLU(), nn.Conv2d(10, 10, 1, bias=False), nn.ReLU(),
                         nn.Flatten(), nn.Linear(10, 2, bias=False))  # fmt: skip


def test_amc_action_wall_and_reward_follow_the_paper_on_a_hand_built_case():
    space = SearchSpace(tiny(), (1, 1, 1), FlopsReduction(2.0), None, 0.8)
    assert space.budget.dense == 2 * 10 + 2 * 100 + 2 * 20 and space.budget.limit == 130
    seen = []
    env = amc.PruningEnv(space, lambda counts: seen.append(space.kept(counts)) or 0.75, lbound=0.2)
    by_name = {name: i for i, name in enumerate(space.groups)}
    first, second = by_name["0"], by_name["2"]
    assert env.floor == [2, 2]
    state = env.reset()
    assert state.shape == (10,) and state[-3:].tolist() == [0.0, pytest.approx(state[-2]), 1.0]
    # preserve all of the first group: later groups at lbound (2 channels) leave 6*c1 + 8 <= 130, so 10 stays
    obs, reward, done, _ = env.step(1.0)
    assert not done and reward == 0.0 and env.kept[first if first == 0 else 0] == 10
    # the second group: 20 + 24*c2 <= 130 gives c2 <= 4.58, so the wall keeps 4 of 10 whatever the action asks
    _, reward, done, info = env.step(1.0)
    assert done and reward == 0.75 and seen == [info["kept"]]
    assert space.fits(space.from_kept(env.kept)) and sorted(env.kept) == [4, 10]
    # an action under lbound is raised to it
    env.reset()
    env.step(0.0)
    assert env.kept[0] == 2
    assert second in (0, 1)


def test_amc_state_columns_are_min_max_normalised():
    table = np.array([[0, 1, 16, 8], [1, 1, 32, 8], [2, 1, 64, 8]], dtype=float)
    out = amc.normalised(table)
    assert out[:, 0].tolist() == [0.0, 0.5, 1.0] and out[:, 2].tolist() == [0.0, 1 / 3, 1.0]
    assert out[:, 1].tolist() == [1.0, 1.0, 1.0]  # constant columns stay


def test_amc_gives_every_transition_of_an_episode_the_final_reward_minus_the_baseline():
    class Buffer:
        rewards = np.zeros((6, 1), dtype=np.float32)
        pos, buffer_size = 1, 6  # wrapped: the episode's three transitions sit at 4, 5 and 0

    buffer = Buffer()
    baseline = amc.episode_reward(buffer, 3, 0.8, None)
    assert baseline == 0.8 and buffer.rewards[[4, 5, 0], 0].tolist() == [0.0, 0.0, 0.0]
    baseline = amc.episode_reward(buffer, 3, 0.6, baseline)
    assert baseline == pytest.approx(0.7)
    assert buffer.rewards[[4, 5, 0], 0] == pytest.approx([-0.1, -0.1, -0.1])
    assert buffer.rewards[[1, 2, 3], 0].tolist() == [0.0, 0.0, 0.0]


def test_amc_episodes_meet_the_budget_and_a_stopped_search_replays_to_the_same_answer(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where SB3's default logger would make its folder
    run = amc.search(space_of(small()), evaluator(digits, "plain"), study("amc-full"), episodes=6, warmup=3, seed=0)
    space = space_of(small())
    assert len(run.trials) == 6 and all(t["candidate"]["flops"] <= space.budget.limit for t in run.trials)
    with pytest.raises(Stop):
        amc.search(space_of(small()), evaluator(digits, "plain"), study("amc-stop"), 6, 3, seed=0, after=stop_after(4))
    again = evaluator(digits, "plain")
    resumed = amc.search(space_of(small()), again, study("amc-stop"), 6, 3, seed=0)
    assert again.evaluated == 2
    assert [t["candidate"]["kept"] for t in resumed.trials] == [t["candidate"]["kept"] for t in run.trials]
    assert resumed.counts == run.counts
    assert not list(tmp_path.glob("SB3-*"))  # no SB3-<time> log folder left behind


# --- proxies ---------------------------------------------------------------------------------------------------


def test_adaptive_bn_sets_running_statistics_to_the_batches_moments():
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3))
    x = torch.randn(32, 1, 4, 4)
    adaptive_bn(model, x, batch_size=8)
    with torch.no_grad():
        h = model[0](x)
    norm = model[1]
    assert not model.training and norm.momentum == 0.1
    assert torch.allclose(norm.running_mean, h.mean((0, 2, 3)), atol=1e-5)
    per_batch = torch.stack([b.var((0, 2, 3), unbiased=True) for b in h.split(8)]).mean(0)
    assert torch.allclose(norm.running_var, per_batch, atol=1e-5)  # cumulative average of the batches' variances


# --- pipeline --------------------------------------------------------------------------------------------------

TINY = dict(dataset="digits", model="small_cnn", epochs=1, finetune_epochs=1, calibration_size=64, progress=False)


@pytest.mark.parametrize("method,hp", [
    ("eagleeye", {"candidates": 3, "correlation": 2, "correlation_steps": 2}),
    ("nsga2", {"population": 2, "generations": 2}),
    ("netadapt", {"iterations": 2, "short_steps": 2}),
    ("amc", {"episodes": 3, "warmup": 2}),
])  # fmt: skip
def test_pipeline_records_the_search_and_meets_the_target(method, hp):
    from workbench.runner.sweep import sweep

    result = sweep("test-automated", [method], [2.0], [0], target_kind="flops_reduction", hparams={method: hp}, **TINY)
    rec = result.records[0]
    search = rec.metrics["search"]
    assert rec.metrics["flops_reduction"] >= 2.0 * (1 - 1e-9)
    assert rec.metrics["flops"] == search["chosen"]["flops"]
    assert rec.metrics["search_candidates"] >= len(search["trials"]) > 0
    assert search["searcher"] == method and len(search["groups"]) == len(search["chosen"]["kept"])
    restored = result.model(rec.run_id, 0)
    assert metrics.flop_count(restored, (1, 8, 8))["flops"] == rec.metrics["flops"]


@pytest.mark.parametrize("change,message", [
    ({"targets": [1000.0]}, "budget flops_reduction=1000 is out of reach: removing 0.8 of every group leaves"),
    ({"hparams": {"eagleeye": {"storage": "sqlite:////no/such/folder/s.db"}}},
     "storage 'sqlite:////no/such/folder/s.db' cannot be opened: folder /no/such/folder does not exist; accepted:"),
    ({"hparams": {"eagleeye": {"storage": "nosuchdb://x"}}}, "storage 'nosuchdb://x' cannot be opened"),
    ({"methods": ["eagle_eye"]}, "unknown method 'eagle_eye'"),
    ({"hparams": {"nsga2": {"proxy": "fine"}}, "methods": ["nsga2"]},
     "unknown proxy 'fine'; known: plain, adaptive_bn"),
])  # fmt: skip
def test_bad_input_fails_in_one_line_before_anything_trains(change, message, tmp_path, monkeypatch):
    from workbench.runner.sweep import sweep

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    grid = {"methods": ["eagleeye"], "targets": [2.0], **change}
    with pytest.raises(checks.ConfigError) as info:
        sweep("test-automated-bad", grid["methods"], grid["targets"], [0], target_kind="flops_reduction",
              hparams=grid.get("hparams"), **TINY)  # fmt: skip
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "cache" / "dense").exists()


def test_a_latency_budget_above_the_dense_model_fails_in_one_line(tmp_path, monkeypatch):
    from workbench.runner.sweep import sweep
    from workbench.targets import make_target

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(checks.ConfigError, match=r"latency budget 10000 ms is not below the dense model's"):
        sweep("test-automated-bad", ["netadapt"], [make_target("latency_ms", 1e4, batch_size=4)], [0],
              hparams={"netadapt": {"table_points": 2}}, **TINY)  # fmt: skip
    assert not (tmp_path / "cache" / "dense").exists()


def test_searchers_copy_nothing_they_do_not_own():
    """The space makes the model traceable in place (same function) and prunes copies only."""
    model = small()
    before = copy.deepcopy(model.state_dict())
    space = space_of(model)
    space.candidate(space.project([1.0, 0.5, 0.2]))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_latency_fraction_is_a_share_of_the_dense_latency_on_this_machine(tmp_path, monkeypatch):
    from workbench.targets import LatencyFraction, make_target

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    space = SearchSpace(small(), (1, 8, 8), LatencyFraction(0.8, batch_size=8), None, 0.8, table_points=2)
    assert space.budget.limit == pytest.approx(0.8 * space.table.dense_ms) == pytest.approx(0.8 * space.budget.dense)
    assert make_target("latency_fraction", 0.5, batch_size=4).label() == "latency<=0.5xdense@b4x1t"
    with pytest.raises(checks.ConfigError, match="latency fraction must be"):
        make_target("latency_fraction", 1.0)
