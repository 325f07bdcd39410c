"""Deployment: runtimes give eager's outputs, sparse kernels give the dense layers' outputs and the crossover rows
have their fields, storage is measured, and an exported structured run is smaller than its dense export."""

import json

import pytest
import torch
import torch.nn as nn

from workbench import checks, models
from workbench.deploy import runtimes, sparse, storage
from workbench.pruning import structural
from workbench.pruning.masks import masked_like

pytestmark = pytest.mark.builds_models


def pruned_pair():
    """small_cnn and a copy with half its FLOPs removed by L1 (random weights: outputs, not accuracy, matter)."""
    from workbench.methods import METHODS
    from workbench.targets import FlopsReduction

    torch.manual_seed(0)
    dense = models.build("small_cnn", 10, (1, 8, 8)).eval()
    pruned = structural.make_traceable(models.build("small_cnn", 10, (1, 8, 8)).eval())
    pruned.load_state_dict(dense.state_dict())
    importance = METHODS.get("l1").criterion(pruned, torch.randn(8, 1, 8, 8))
    structural.prune_to_target(pruned, (1, 8, 8), importance, FlopsReduction(2.0), "uniform", None)
    return dense, pruned.eval()


@pytest.mark.parametrize("runtime", ["eager", "onnxruntime", pytest.param("compile", marks=pytest.mark.slow)])
def test_every_runtime_gives_eager_outputs(runtime):
    dense, pruned = pruned_pair()
    x = torch.randn(4, 1, 8, 8)
    for net in (dense, pruned, masked_like(dense, pruned)):
        prepared = runtimes.prepare(net, runtime, x, threads=1)
        with torch.no_grad():
            expected = net(x)
        torch.testing.assert_close(prepared.run(runtimes.as_layout(x, prepared.channels_last)), expected,
                                   atol=1e-4, rtol=1e-4)  # fmt: skip
        assert prepared.setup_seconds > 0


def test_an_unknown_runtime_is_refused_in_one_line():
    with pytest.raises(checks.ConfigError, match="unknown runtime 'tensorrt'|runtime must be one of"):
        runtimes.check_runtimes("eager,tensorrt")


@pytest.mark.parametrize("backend", sparse.BACKENDS)
@pytest.mark.parametrize("layer,shape", [
    (nn.Linear(40, 16), (40,)),
    (nn.Conv2d(3, 8, 3, padding=1, stride=2), (3, 9, 9)),
    (nn.Conv1d(4, 6, 3, padding=1, stride=2), (4, 11)),
])  # fmt: skip
def test_sparse_layers_give_the_masked_dense_outputs(backend, layer, shape):
    torch.manual_seed(0)
    masked = sparse.masked_copy(layer, 0.8)
    assert int((masked.weight == 0).sum()) == round(0.8 * masked.weight.numel())
    x = torch.randn(5, *shape)
    with torch.no_grad():
        torch.testing.assert_close(sparse.SparseLayer(masked, backend)(x), masked(x), atol=1e-5, rtol=1e-5)


def test_a_sparsified_model_gives_the_dense_outputs():
    model = sparse.masked_copy(models.build("small_cnn", 10, (1, 8, 8)), 0.9)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(sparse.sparsified(model, "torch_csr")(x), model(x), atol=1e-5, rtol=1e-5)


def test_the_crossover_benchmark_rows_have_their_fields():
    cases = sparse.layer_cases(["mlp"])[:1]
    rows = sparse.benchmark_rows(cases, [], sparsities=[0.5, 0.99], batch_sizes=[1], backends=["torch_csr"],
                                 rounds=1, min_run_time=0.01)  # fmt: skip
    assert len(rows) == 2
    for row in rows:
        assert {"item", "kind", "sparsity", "batch_size", "backend", "dense_ms", "sparse_ms", "speedup"} <= set(row)
    (found,) = sparse.crossovers(rows)
    assert {"crossover", "best_speedup", "at_sparsity"} <= set(found)
    assert json.loads(json.dumps(found)) == found


def test_crossover_is_the_lowest_sparsity_from_which_sparse_stays_faster():
    rows = [{"item": "l", "kind": "layer", "batch_size": 1, "backend": "b", "sparsity": s, "speedup": v}
            for s, v in [(0.5, 0.5), (0.7, 1.2), (0.8, 0.9), (0.9, 1.5), (0.99, 3.0)]]  # fmt: skip
    assert sparse.crossovers(rows)[0]["crossover"] == 0.9
    assert sparse.crossovers([{**r, "speedup": 0.5} for r in rows])[0]["crossover"] is None


def test_storage_is_measured_and_orders_as_expected():
    dense, pruned = pruned_pair()
    masked = masked_like(dense, pruned)
    sizes = storage.sizes(dense=dense, pruned=pruned, masked=masked)
    assert sizes["storage_bytes_pruned"] < sizes["storage_bytes_dense"]
    assert sizes["storage_bytes_masked"] == pytest.approx(sizes["storage_bytes_dense"], rel=0.01)  # zeros stored
    very_sparse = sparse.masked_copy(dense, 0.95)
    assert storage.csr_bytes(very_sparse) < storage.serialized_bytes(very_sparse)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torch"])
def test_an_exported_structured_run_is_smaller_than_its_dense_export_and_gives_its_outputs(fmt, tmp_path):
    from workbench.deploy.export import export
    from workbench.runner import sweep

    result = sweep("test-export", ["l1"], [2.0], [0], target_kind="flops_reduction", dataset="digits",
                   model="small_cnn", epochs=1, finetune_epochs=1, progress=False)  # fmt: skip
    run_id = result.records[0].run_id
    out = export(run_id, fmt, tmp_path / f"model.{fmt}")
    assert out["bytes"] < out["dense_bytes"]
    assert out["max_abs_diff"] <= 1e-4 * 100
    assert (tmp_path / f"model.{fmt}").stat().st_size == out["bytes"]


def test_exporting_an_unknown_run_is_refused_in_one_line():
    from workbench.deploy.export import export

    with pytest.raises(checks.ConfigError, match="no record of run 'feedbeef00000000'"):
        export("feedbeef00000000", "onnx")


def test_bench_speedup_reports_runtime_setup_agreement_and_storage():
    from workbench import bench

    row = bench.speedup("small_cnn", "l1", 1.5, batch_size=2, threads=1, round_to=None, runtime="onnxruntime",
                        rounds=1)  # fmt: skip
    assert row["runtime"] == "onnxruntime" and row["setup_seconds_pruned"] > 0
    assert row["max_abs_diff_vs_eager"] < 1e-3
    assert row["storage_bytes_pruned"] < row["storage_bytes_dense"]
    assert row["efficiency"] == pytest.approx(row["speedup"] / row["flops_speedup"])
    with pytest.raises(checks.ConfigError, match="runtime"):
        bench.speedup("small_cnn", "l1", 1.5, runtime="tvm")
