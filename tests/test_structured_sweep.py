import math

import pandas as pd
import pytest

from workbench import analysis, bench, records, structured_sweep
from workbench.config import ConfigError


@pytest.fixture(scope="module")
def sweep():
    return structured_sweep.run_structured_sweep(
        "test-structured",
        ["l1", "apoz"],
        [2.0],
        [0],
        dataset="digits",
        model="small_cnn",
        epochs=1,
        finetune_epochs=1,
        round_to=0,
    )


def test_records_carry_structured_columns_and_a_masked_twin(sweep):
    table = records.load_records("test-structured")
    assert set(table["family"]) == {"filter-ranking", "magnitude"}
    for column in ("flops_reduction", "latency_ms", "latency_ms_dense", "efficiency", "speedup"):
        assert table[column].notna().all(), column
    structured = table[table["family"] == "filter-ranking"]
    twin = table[table["family"] == "magnitude"].iloc[0]
    assert structured["flops_reduction"].between(1.9, 2.1).all()
    assert structured["params"].nunique() == 1  # uniform allocation: same size whatever the criterion
    l1 = structured[structured["method"] == "l1"].iloc[0]
    # the twin keeps as many conv/linear weights as the structured model (up to rounding)
    assert twin["matched_to"] == "l1" and abs(twin["sparsity"] - l1["sparsity"]) < 1e-3


def test_key_figures_and_conclusions_come_from_the_results(sweep):
    figures = analysis.structured_key_figures(sweep.results)
    assert list(figures["method"]) == ["apoz", "l1"]
    assert (figures["params_min"] == figures["params_max"]).all()
    agreement = pd.DataFrame([[1.0, 0.4], [0.4, 1.0]], index=["apoz", "l1"], columns=["apoz", "l1"])
    lines = analysis.structured_conclusions(sweep.results, agreement)
    assert any("overlap most (Jaccard 0.40)" in line for line in lines)


def test_agreement_is_a_symmetric_jaccard_matrix(sweep):
    overlap = structured_sweep.agreement(sweep.dense_models[0], sweep.bundle, ["l1", "l2", "random_filter"], 0.5)
    assert all(overlap.loc[c, c] == 1.0 for c in overlap.index)
    assert overlap.equals(overlap.T)
    assert all(0 <= v <= 1 for v in overlap.to_numpy().ravel() if not math.isnan(v))


def test_only_filter_ranking_criteria_are_accepted():
    with pytest.raises(ConfigError, match="criterion .lamp. is not in family .filter-ranking.; known: apoz, fpgm"):
        structured_sweep.plan(["lamp"], [2.0], [0])
    with pytest.raises(ConfigError, match="flops_reduction must be a number >= 1"):
        structured_sweep.plan(["l1"], [0.5], [0])


def test_bench_reports_every_field():
    result = bench.speedup("small_cnn", "l1", 2.0, batch_size=4, threads=1, round_to=None)
    for key in (
        "flops_dense",
        "flops_pruned",
        "params_dense",
        "params_pruned",
        "latency_ms_dense",
        "latency_ms_pruned",
        "batch_size",
        "threads",
        "speedup",
        "flops_speedup",
        "efficiency",
        "unstructured_speedup",
    ):
        assert key in result and result[key] is not None, key
    assert result["flops_pruned"] < result["flops_dense"] and result["params_pruned"] < result["params_dense"]
    assert result["efficiency"] == pytest.approx(result["speedup"] / result["flops_speedup"])
    with pytest.raises(ValueError, match="unknown criterion 'lamp'; known: apoz"):
        bench.speedup("small_cnn", "lamp")


def test_iterative_pruning_reaches_the_target_in_rounds(sweep):
    from workbench import config, metrics

    cfg = config.from_flat(
        method="l1", flops_reduction=2.0, iterative_steps=2, finetune_epochs=1, round_to=0, model="small_cnn"
    )
    dense = sweep.dense_models[0]
    pruned = structured_sweep.prune_physically(dense, cfg, sweep.bundle)
    shape = sweep.bundle.input_shape
    reduction = metrics.flop_count(dense, shape)["flops"] / metrics.flop_count(pruned, shape)["flops"]
    assert reduction == pytest.approx(2.0, rel=0.05)
    assert metrics.top1(pruned, structured_sweep.wdata.loader(sweep.bundle.test, 256, False)) > 0.5
