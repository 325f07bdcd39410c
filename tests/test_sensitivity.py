"""The sensitivity family: criteria against their formulas on hand-built cases, and against the authors' code.

Agreement with the reference implementations, recorded: SNIP, GraSP and SynFlow scores of workbench.pruning.saliency
were compared with ganguli-lab/Synaptic-Flow (Pruners/pruners.py, commit 9dfa57a, whose SNIP and GraSP follow
mi-lad/snip and alecwangcq/GraSP) on identical weights (a conv-BN-conv-BN-linear net with non-trivial batch-norm
statistics, 32 labelled inputs, eval mode): largest relative difference SNIP 0.0, GraSP 8.4e-8, SynFlow 0.0.
(That comparison ran once against the fetched repository; its code is not part of this project.)
"""

import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench import metrics, models
from workbench.checks import ConfigError
from workbench.pruning import obs, ranking, saliency, sensitivity_scan
from workbench.runner import pipeline, recipe

TINY = {"dataset": "digits", "model": "small_cnn", "epochs": 1, "finetune_epochs": 1, "calibration_size": 32}


def mse(outputs, targets):
    """A quadratic loss: mean over examples of the squared error (targets are real numbers here)."""
    return ((outputs.squeeze(-1) - targets) ** 2).mean()


def linear_case(n=64, d=3, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(d, 1, bias=False))
    x, y = torch.randn(n, d), torch.randn(n)
    return model, x, y


def test_exact_hessian_diagonal_of_a_quadratic_loss_is_2_xtx_over_n():
    model, x, y = linear_case()
    expected = (2 * x.T @ x / len(x)).diagonal()
    exact = saliency.hessian_diagonal(model, x, y, "exact", loss_fn=mse)["0"].flatten()
    assert torch.allclose(exact, expected, atol=1e-5)
    hutch = saliency.hessian_diagonal(model, x, y, "hutchinson", loss_fn=mse, samples=4000)["0"].flatten()
    assert torch.allclose(hutch, expected, rtol=0.1)  # unbiased; noise falls as 1/sqrt(samples)
    w = model[0].weight.detach().flatten()
    assert torch.allclose(saliency.obd(model, x, y, "exact", loss_fn=mse)["0"].flatten(), 0.5 * expected * w**2)


def test_fisher_diagonal_is_the_mean_squared_per_example_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    fisher = saliency.hessian_diagonal(model, x, y, "fisher")["0"]
    by_hand = torch.zeros_like(model[0].weight)
    for xi, yi in zip(x, y, strict=True):
        g = torch.autograd.grad(F.cross_entropy(model(xi[None]), yi[None]), model[0].weight)[0]
        by_hand += g**2 / len(x)
    assert torch.allclose(fisher, by_hand, atol=1e-7)


def test_exact_mode_refuses_large_layers_in_one_line():
    model = models.build("small_cnn", 10, (1, 8, 8))
    with pytest.raises(ConfigError, match=r"exact Hessian of layer '3' \(18432 weights\) exceeds max_exact=4096"):
        saliency.hessian_diagonal(model, torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), "exact")


def test_grasp_score_is_w_times_hessian_gradient_product_on_a_quadratic():
    model, x, y = linear_case()
    w = model[0].weight.detach().flatten()
    h = 2 * x.T @ x / len(x)
    g = 2 * x.T @ (x @ w - y) / len(x)
    raw = w * (h @ g)
    scores = saliency.grasp(model, x, y, loss_fn=mse, temperature=1.0)["0"].flatten()
    assert torch.allclose(scores, raw / (raw.sum().abs() + 1e-10), atol=1e-6)


def test_snip_and_taylor_follow_their_formulas():
    model, x, y = linear_case()
    w = model[0].weight.detach().flatten()
    g = 2 * x.T @ (x @ w - y) / len(x)
    snip = saliency.snip(model, x, y, loss_fn=mse)["0"].flatten()
    assert torch.allclose(snip, (g * w).abs() / (g * w).abs().sum(), atol=1e-6)
    taylor = saliency.taylor(model, x, y, loss_fn=mse, batch_size=len(x))["0"].flatten()
    assert torch.allclose(taylor, (g * w) ** 2, atol=1e-6)


def test_synflow_conserves_synaptic_flow_through_a_two_layer_linear_network():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5, bias=False), nn.Linear(5, 3, bias=False))
    scores = saliency.synflow(model, (4,))
    first, second = scores["0"], scores["1"]
    r = (model[1].weight.abs() @ model[0].weight.abs()).sum()
    assert torch.allclose(first.sum(), r) and torch.allclose(second.sum(), r)  # every layer carries R
    assert torch.allclose(first.sum(1), second.sum(0))  # into a neuron = out of it


def test_synflow_rounds_on_one_refreshed_copy_equal_a_fresh_copy_each_round():
    from workbench.methods.sensitivity import mask_by_scores

    torch.manual_seed(0)
    fresh, reused = models.build("resnet20", 10, (3, 8, 8)), models.build("resnet20", 10, (3, 8, 8))
    reused.load_state_dict(fresh.state_dict())
    scorer = saliency.synflow_scorer(reused, (3, 8, 8))
    for sparsity in (0.3, 0.6, 0.8):
        a, b = saliency.synflow(fresh, (3, 8, 8)), scorer()
        assert all(torch.equal(a[n], b[n]) for n in a)
        mask_by_scores(fresh, a, sparsity, "global")
        mask_by_scores(reused, b, sparsity, "global")
    assert metrics.sparsity(reused) > 0.79


def test_obs_update_removes_a_redundant_input_of_a_least_squares_layer_exactly():
    torch.manual_seed(0)
    x = torch.randn(200, 3)
    x[:, 2] = x[:, 0] + x[:, 1]  # one input is a sum of the others: its weight can go at no cost
    w = torch.randn(4, 3)
    h = 2 * x.T @ x / len(x)
    new, removed, loss = obs.obs_rows(w, h, 1, damp=1e-9)
    assert removed.sum(1).tolist() == [1, 1, 1, 1] and loss < 1e-4
    assert ((x @ w.T - x @ new.T) ** 2).mean() < 1e-8
    assert ((x @ w.T - x @ (w * ~removed).T) ** 2).mean() > 0.1  # the mask alone would not do


def test_sparsegpt_solver_reaches_the_sparsity_and_beats_its_own_mask_without_updates():
    torch.manual_seed(0)
    x = torch.randn(500, 40) @ torch.randn(40, 40)
    w = torch.randn(8, 40)
    h = 2 * x.T @ x / len(x)
    new, removed, _ = obs.sparsegpt_rows(w, h, 0.5)
    assert removed.float().mean() == 0.5 and torch.all(new[removed] == 0)
    error = ((x @ w.T - x @ new.T) ** 2).mean()
    assert error < ((x @ w.T - x @ (w * ~removed).T) ** 2).mean()


@pytest.mark.parametrize("solver", ["sparsegpt", "greedy"])
def test_obs_prune_masks_a_network_and_masks_only_shrink(solver):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 20, 10))
    x = torch.randn(64, 1, 20)
    obs.obs_prune(model, x, 0.5, solver=solver)
    first = {n: m.weight_mask.clone() for n, m in metrics.prunable_layers(model)}
    obs.obs_prune(model, x, 0.8, solver=solver)
    for name, layer in metrics.prunable_layers(model):
        assert torch.all(layer.weight_mask <= first[name])
        fan_in = layer.weight[0].numel()  # the greedy solver removes as many weights from every row
        assert layer.weight_mask.mean().item() == pytest.approx(0.2, abs=0.5 / fan_in + 0.01)


def test_sensitivity_allocation_gives_robust_layers_more_and_meets_the_target():
    table = pd.DataFrame(
        [{"layer": "a", "weights": 100, "ratio": r, "accuracy": 0, "drop": d} for r, d in [(0.5, 0.0), (0.9, 0.5)]]
        + [{"layer": "b", "weights": 300, "ratio": r, "accuracy": 0, "drop": d} for r, d in [(0.5, 0.0), (0.9, 0.01)]]
    )
    ratios = sensitivity_scan.allocate(table, 0.6)
    assert (ratios["a"] * 100 + ratios["b"] * 300) / 400 == pytest.approx(0.6)
    assert ratios["b"] > ratios["a"]  # b barely suffers, so it takes more
    with pytest.raises(ConfigError, match="reach at most sparsity 0.900"):
        sensitivity_scan.allocate(table, 0.95)


def test_sensitivity_scan_prunes_each_layer_alone():
    torch.manual_seed(0)
    model = models.build("mlp", 10, (1, 40))
    x, y = torch.randn(50, 1, 40), torch.randint(0, 10, (50,))
    table = sensitivity_scan.scan(model, x, y, [0.5, 0.99])
    assert len(table) == 3 * 2 and set(table["layer"]) == {"1", "3", "5"}
    assert not any(hasattr(m, "weight_mask") for m in model.modules())  # the model itself is untouched


def test_filter_taylor_is_the_squared_sum_of_gradient_times_weight_per_filter():
    torch.manual_seed(0)
    model = models.build("small_cnn", 10, (1, 8, 8)).eval()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    importance = ranking.FilterTaylor(model, x, y, 64)
    graph = __import__("torch_pruning").DependencyGraph().build_dependency(model, example_inputs=x[:1])
    group = graph.get_pruning_group(model[0], __import__("torch_pruning").prune_conv_out_channels, list(range(32)))
    loss = F.cross_entropy(model(x), y)
    g = torch.autograd.grad(loss, model[0].weight)[0]
    expected = (g * model[0].weight).detach().flatten(1).sum(1) ** 2
    assert torch.allclose(importance(group), expected, rtol=1e-4, atol=1e-12)


def test_pruning_at_initialisation_prunes_the_initial_weights_then_trains():
    r = recipe("snip", ("sparsity", 0.9), prune_at="init", **TINY)
    (record,) = pipeline.run_recipe(r, "test-init")
    assert record.metrics["sparsity"] == pytest.approx(0.9, abs=1e-3) and record.metrics["top1"] > 0.2
    after = pipeline.run_recipe(recipe("snip", ("sparsity", 0.9), **TINY), "test-init")[0]
    assert after.run_id != record.run_id


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: recipe("obd", ("sparsity", 0.5), hparams={"hessian": "diag"}),
            "unknown hessian 'diag'; known: fisher",
        ),
        (lambda: recipe("obs", ("sparsity", 0.5), hparams={"solver": "lu"}), "unknown solver 'lu'; known: sparsegpt"),
        (lambda: recipe("snip", ("flops_reduction", 2.0)), "does not take a flops_reduction target"),
        (lambda: recipe("snip", ("sparsity", 0.5), prune_at="birth"), "unknown prune_at 'birth'; known: trained"),
        (lambda: recipe("snip", ("sparsity", 0.5), prune_at="init", schedule="iterative"), "prune_at='init' runs"),
        (lambda: recipe("sensitivity_allocation", ("sparsity", 0.5), hparams={"ratios": []}), "ratios must be"),
    ],
)
def test_bad_sensitivity_settings_fail_in_one_line_before_training(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_calibration_batch_larger_than_the_training_split_is_refused_before_training(monkeypatch):
    from workbench.runner import store, sweep

    monkeypatch.setattr(store, "train_dense", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ConfigError, match=r"calibration_size 100000 is larger than the training split of digits"):
        sweep("t-cal", ["snip"], [0.5], [0], target_kind="sparsity", **{**TINY, "calibration_size": 100000})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("calibration_size", 5000, "calibration_size 5000 is larger than the training split of digits"),
        ("hessian", "diag", "unknown hessian 'diag'"),
        ("methods", ["obx"], "unknown method 'obx'"),
        ("init_sparsities", [1.0], "sparsity must be a number in [0, 1)"),
    ],
)
def test_notebook_03_refuses_bad_parameters_before_a_kernel_starts(name, value, message):
    from workbench import notebook_checks, paths

    with pytest.raises(notebook_checks.ParameterError) as info:
        notebook_checks.validate(paths.notebooks_dir() / "03-sensitivity.ipynb", {name: value})
    assert message in str(info.value) and str(info.value).startswith(f"03-sensitivity: {name}=")
