"""The cross-family comparison (workbench.compare) on hand-built cases with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from workbench.checks import ConfigError
from workbench.compare import published, setup, stats
from workbench.runner.sweep import plan

SETUP = dict(
    dataset="digits", model="small_cnn", seeds=[0, 1], epochs=1, batch_size=64, lr=0.1,
    structured=["l1", "random_filter"], dynamic=["dgnet"], unstructured=["lamp", "random"], lottery=["imp"],
    flops_reductions=[2.0], sparsities=[0.5],
    finetune_epochs=2, finetune_lrs=[0.01, 0.1], imp_levels=2, greg_reg_epochs=1, eagleeye_candidates=2,
    calibration_size=32, latency_batch_size=8, twin_method="l1",
)  # fmt: skip


def test_ci95_is_students_t_half_width():
    assert stats.ci95([1.0, 2.0, 3.0]) == pytest.approx(4.302652729911275 / np.sqrt(3))
    assert np.isnan(stats.ci95([1.0]))


def test_paired_p_is_scipys_paired_t_test_and_handles_constant_differences():
    a, b = pd.Series([1.0, 2.0, 4.0], index=[0, 1, 2]), pd.Series([0.5, 1.0, 1.0], index=[0, 1, 2])
    assert stats.paired_p(a, b) == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert stats.paired_p(a, a) == 1.0
    assert stats.paired_p(a, a - 1) == 0.0
    assert np.isnan(stats.paired_p(a.iloc[:1], b.iloc[:1]))


def test_kendall_tau_of_same_and_reversed_orders():
    a = pd.Series([3.0, 2.0, 1.0], index=["x", "y", "z"])
    assert stats.kendall(a, a * 2)[0] == pytest.approx(1.0)
    assert stats.kendall(a, -a)[0] == pytest.approx(-1.0)
    assert stats.kendall(a, a.iloc[:1])[2] == 1


def record_rows():
    """Two seeds of: l1 (structured), random_filter, dgnet (dynamic, misses 2x), lamp, random, imp (two levels)."""
    rows = []
    deltas = {"l1": (-1.0, -2.0), "random_filter": (-4.0, -5.0), "dgnet": (0.0, 0.0), "lamp": (-1.0, -1.5),
              "random": (-30.0, -20.0), "imp": (-2.0, -2.5)}  # fmt: skip
    for seed in (0, 1):
        for method, delta in deltas.items():
            kind = stats.kind_of(method)
            flops_target = kind in ("structured", "dynamic")
            levels = 2 if method == "imp" else None
            for level in [1, 2] if levels else [None]:
                rows.append({
                    "run_id": f"{method}-{seed}-{level}", "method": method, "family": _family(method), "role": "main",
                    "seed": seed, "level": level, "levels": levels, "hparams": "{}",
                    "target_kind": "flops_reduction" if flops_target else "sparsity",
                    "target_value": 2.0 if flops_target else 0.5, "top1": 0.9 + delta[seed] / 100, "dense_top1": 0.9,
                    "flops_reduction": 2.0 if kind == "structured" else 1.0,
                    "effective_flops_reduction": 2.0 if kind == "structured" else 1.9,
                    "flops_mean_reduction": 1.2 if kind == "dynamic" else np.nan,
                    "sparsity": 0.5 if not flops_target and level != 1 else (0.25 if level == 1 else 0.4),
                    "speedup": 1.5 if kind == "structured" else 1.0,
                })  # fmt: skip
    records = pd.DataFrame(rows)
    planned = pd.DataFrame({"run_id": records["run_id"], "kind": records["method"].map(stats.kind_of),
                            "finetune_lr": 0.01})  # fmt: skip
    return records, planned


def _family(method):
    from workbench.methods.base import METHODS

    return METHODS.info(method)["family"]


def test_points_keep_final_levels_and_count_flops_as_each_kind_executes():
    points = stats.points(*record_rows())
    assert len(points) == 12  # imp's first level left out
    by = points.set_index(["method", "seed"])
    assert by.loc[("l1", 0), "delta"] == pytest.approx(-1.0)
    assert by.loc[("l1", 0), "flops_x"] == 2.0  # structured: the smaller network
    assert by.loc[("lamp", 0), "flops_x"] == 1.9  # unstructured: nonzero multiply-adds
    assert by.loc[("dgnet", 0), "flops_x"] == 1.2  # dynamic: mean executed
    assert by.loc[("lamp", 0), "params_x"] == pytest.approx(2.0)
    assert not by.loc[("dgnet", 0), "reached"] and by.loc[("l1", 0), "reached"] and by.loc[("imp", 1), "reached"]


def test_missed_targets_are_not_ranked_and_the_ranking_tests_against_the_random_baseline():
    points = stats.points(*record_rows())
    summary = stats.summary(points)
    best = stats.best_settings(summary)
    assert "dgnet" not in set(best["method"]) and stats.missed(summary)["method"].tolist() == ["dgnet"]
    ranking = stats.ranking(points, best, setup.BASELINES).set_index("method")
    assert ranking.loc["l1", "rank"] == 1 and ranking.loc["random_filter", "rank"] == 2
    diff = pd.Series([-1.0, -2.0]) - pd.Series([-4.0, -5.0])  # constant difference: p = 0
    assert np.allclose(diff, 3.0) and ranking.loc["l1", "p_vs_random"] == 0.0
    assert ranking.loc["l1", "vs_random"] == "better" and ranking.loc["random_filter", "vs_random"] == ""
    assert ranking.loc["imp", "vs_best"] in ("worse", "not shown to differ")
    assert ranking.loc["lamp", "p_vs_random"] == pytest.approx(sps.ttest_rel([-1.0, -1.5], [-30.0, -20.0]).pvalue)


def test_lr_effect_is_kendalls_tau_between_the_rankings_at_two_rates():
    best = pd.DataFrame({
        "target_kind": "sparsity", "target_value": 0.5, "method": ["a", "b", "c"] * 2,
        "finetune_lr": [0.01] * 3 + [0.1] * 3, "delta": [-1.0, -2.0, -3.0, -3.0, -2.0, -1.0],
    })  # fmt: skip
    effect = stats.lr_effect(best, 0.01).iloc[0]
    assert effect["kendall_tau"] == pytest.approx(-1.0)
    assert (effect["leader_main"], effect["leader_other"]) == ("a", "c")
    assert effect["largest_change"] == pytest.approx(2.0)


def test_pareto_front_across_families():
    best = pd.DataFrame({"flops_x": [2.0, 4.0, 3.0], "delta": [-1.0, -3.0, -4.0]})
    assert stats.pareto(best, "flops_x")["on_front"].tolist() == [True, True, False]


def literature():
    """Own rows of GReg and L1, one reproduction of L1 by others, one not fine-tuned FPGM row."""
    base = {"model": "resnet56", "dataset": "cifar10", "baseline_top1": 93.0, "flops_base": np.nan,
            "flops_pruned": np.nan, "params_base": np.nan, "params_pruned": np.nan, "params_reduction_pct": np.nan,
            "counted": "yes", "result_id": ""}  # fmt: skip
    rows = [
        {**base, "key": "wang2021neural", "method": "GReg-1 (50%)", "pruned_top1": 92.5, "flops_reduction_pct": 50.0,
         "reported_in": "", "result_id": "g"},
        {**base, "key": "li2017pruning", "method": "L1 A", "pruned_top1": 93.1, "flops_reduction_pct": 10.0,
         "reported_in": "", "result_id": "own"},
        {**base, "key": "li2017pruning", "method": "L1 (PR 0.5)", "pruned_top1": 92.0, "flops_reduction_pct": 50.0,
         "reported_in": "someone2023", "result_id": "other"},
        {**base, "key": "he2019filter", "method": "FPGM-only 40% (without fine-tuning)", "pruned_top1": 90.0,
         "flops_reduction_pct": 50.0, "reported_in": "", "result_id": "raw"},
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["delta_top1"] = np.nan
    return frame


def test_reproduction_prefers_the_papers_own_row_and_skips_rows_without_fine_tuning():
    best = pd.DataFrame({
        "method": ["greg", "l1", "fpgm"], "target_kind": "flops_reduction", "target_value": 2.0,
        "flops_x": 2.0, "delta": [-1.0, -2.0, -0.5], "delta_ci": 0.1,
    })  # fmt: skip
    table = published.reproduction(best, "resnet56/cifar10", literature()).set_index("method")
    assert sorted(table.index) == ["greg", "l1"]  # FPGM's only row was measured before fine-tuning
    assert table.loc["l1", "result_id"] == "own" and table.loc["l1", "reported_by"] == "own paper"
    assert table.loc["greg", "paper_delta"] == pytest.approx(-0.5)
    assert table.loc["greg", "our_flops_reduction_pct"] == pytest.approx(50.0)
    tau = published.rank_agreement(table.reset_index()).iloc[0]
    assert tau["methods"] == 2 and tau["kendall_tau"] == pytest.approx(-1.0)  # l1 +0.1 > greg -0.5; ours reversed


def test_grids_share_the_setup_and_plan_every_run():
    grids = setup.grids(**SETUP)
    assert sorted(grids) == ["lottery lr=0.01", "lottery lr=0.1", "structured lr=0.01", "structured lr=0.1",
                             "unstructured lr=0.01", "unstructured lr=0.1"]  # fmt: skip
    assert grids["lottery lr=0.1"]["finetune_epochs"] == 1 and grids["lottery lr=0.1"]["pruning_steps"] == 2
    planned = setup.planned(grids)
    # per seed and LR: 3 flops methods + 2 masks + imp's two levels; the twin once per seed at the first LR
    assert len(planned) == 2 * 2 * (3 + 2 + 2) + 2
    assert set(planned["kind"]) == {"structured", "dynamic", "unstructured", "lottery"}
    timed = {name: any(r.latency is not None for r in plan(**grid)) for name, grid in grids.items()}
    assert timed == {name: name.endswith("lr=0.01") for name in grids}  # speed is read at the comparison's LR


@pytest.mark.parametrize(
    "change, message",
    [
        ({"structured": ["l1", "lamp", "random_filter"]}, "'lamp' cannot be in structured"),
        ({"structured": ["l1"]}, "random baseline 'random_filter'"),
        ({"unstructured": ["lamp", "imp", "random"]}, "'imp' cannot be in unstructured"),
        ({"finetune_epochs": 3}, "finetune_epochs=3 does not split over imp_levels=2"),
        ({"twin_method": "fpgm"}, "twin_method 'fpgm'"),
        ({"finetune_lrs": 0.01}, "finetune_lrs must be a non-empty list"),
        ({"structured": ["l1", "slimming", "random_filter"]}, "'slimming' trains its own dense model"),
        ({"dynamic": ["fbs"]}, "'fbs' cannot be in dynamic"),
    ],
)
def test_a_bad_setup_is_one_line_before_anything_trains(change, message):
    with pytest.raises(ConfigError, match=message) as info:
        setup.grids(**{**SETUP, **change})
    assert "\n" not in str(info.value)
