"""The pipeline every family runs on: recipes, records, resume, controls, schedules, serial = parallel."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass

import pandas as pd
import pytest
import torch

from workbench import config, metrics, paths, records, training
from workbench import data as wdata
from workbench.checks import ConfigError
from workbench.methods import METHODS
from workbench.runner import pipeline, recipe, store, sweep
from workbench.runner.schedules import level_target
from workbench.targets import Sparsity

TINY = {"dataset": "digits", "model": "small_cnn", "epochs": 1, "finetune_epochs": 1, "calibration_size": 32}
FIRST_TARGET = {
    "sparsity": 0.5, "flops_reduction": 1.5, "param_reduction": 1.5, "channel_ratio": 0.3, "gate_density": 0.5,
}  # fmt: skip


def tiny_target(method: str):
    kind = next(k for k in METHODS.info(method)["targets"] if k in FIRST_TARGET)
    return kind, FIRST_TARGET[kind]


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_runs_a_tiny_recipe_reaches_its_target_and_its_record_round_trips(method):
    kind, value = tiny_target(method)
    r = recipe(method, (kind, value), **TINY)
    assert r.hparams == METHODS.get(method).hparams()  # defaults validate
    *levels, rec = pipeline.run_recipe(r, "test-methods")  # iterative methods (imp): the last level meets the target
    assert len(levels) == r.schedule.levels - 1
    m = rec.metrics
    if METHODS.info(method)["family"] == "dynamic":  # a budget the gates learn: one epoch is too short to meet it
        assert m["flops_mean"] <= m["dense_flops"] * 1.01 and len(m["flops_per_input"]) > 0
    elif kind == "sparsity":
        assert m["sparsity"] == pytest.approx(value, abs=0.02)
    elif kind == "flops_reduction":
        assert value - 1e-9 <= m["flops_reduction"] <= 1.5 * value  # at least the target, in coarse channel steps
    assert 0 <= m["top1"] <= 1 and 0 <= m["dense_top1"] <= 1
    again = records.RunRecord.from_json(rec.to_json())
    assert again == rec and records.read_record("test-methods", rec.run_id) == rec
    assert rec.family == METHODS.info(method)["family"] and rec.target == {"kind": kind, "value": value}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: recipe("l3", ("sparsity", 0.5)), "unknown method 'l3'"),
        (lambda: recipe("lamp", ("sparsity", 1.0)), "sparsity must be a number in [0, 1), got 1.0"),
        (lambda: recipe("lamp", ("flops_reduction", 2.0)), "not take a flops_reduction target; accepted: sparsity"),
        (lambda: recipe("lamp", ("sparsity", 0.5), epochs=-1), "epochs must be an integer >= 0, got -1"),
        (lambda: recipe("lamp", ("sparsity", 0.5), spasity=0.5), "unknown parameter 'spasity'; known: "),
        (lambda: recipe("lamp", ("sparsity", 0.5), dataset="imagenet21k"), "unknown dataset 'imagenet21k'"),
        (lambda: recipe("lamp", ("sparsity", 0.5), hparams={"beta": 1}), "unknown hyperparameter 'beta' of lamp"),
        (lambda: recipe("lamp", ("sparsity", 0.5), controls=["masked_twin"]), "control 'masked_twin' needs a"),
        (lambda: recipe("lamp", ("sparsity", 0.5), schedule="gradual", rewind_step=3), "rewind_step cannot"),
        (lambda: recipe("lamp", ("gates", 0.5)), "unknown target kind 'gates'"),
    ],
)
def test_bad_values_fail_in_one_line_naming_them(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_hyperparameters_are_typed_with_help_and_ranges():
    for name in METHODS.names():
        hp = METHODS.get(name).Hparams
        assert all(text.strip() and "default:" in text for text in hp.help().values()), name
    with pytest.raises(ConfigError, match=r"^samples_per_image must be an integer >= 1, got 0$"):
        recipe("thinet", ("flops_reduction", 2.0), hparams={"samples_per_image": 0})


def test_a_grid_is_validated_before_anything_trains(monkeypatch):
    monkeypatch.setattr(store, "train_dense", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ConfigError, match="sparsity must be"):
        sweep("t", ["lamp"], [0.5, 1.2], [0], target_kind="sparsity")
    with pytest.raises(ConfigError, match="seeds must be a non-empty list"):
        sweep("t", ["lamp"], [0.5], 0, target_kind="sparsity")
    with pytest.raises(ConfigError, match="not in family 'filter-ranking'"):
        sweep("t", ["lamp"], [2.0], [0], target_kind="flops_reduction", family="filter-ranking")


def test_run_ids_hash_only_non_default_fields():
    @dataclass(frozen=True)
    class Grown(config.DataConfig):
        new_field: int = 3  # a field added later, with a default

    a = recipe("lamp", ("sparsity", 0.5), **TINY)
    b = dataclasses.replace(a, data=Grown(dataset="digits"))
    assert a.run_id() == b.run_id() and a.dense_key() == b.dense_key()
    assert a.run_id() != recipe("lamp", ("sparsity", 0.6), **TINY).run_id()
    assert a.dense_key() == recipe("random", ("sparsity", 0.9), **TINY).dense_key()  # pruning leaves dense alone
    assert a.dense_key() != recipe("lamp", ("sparsity", 0.5), **{**TINY, "epochs": 2}).dense_key()
    assert a.run_id() == recipe("lamp", ("sparsity", 0.5), controls=["random_mask"], **TINY).run_id()
    timed = recipe("lamp", ("sparsity", 0.5), measure_latency=True, **TINY)  # latency at its default settings
    assert timed.run_id() != a.run_id() and timed.dense_key() == a.dense_key()
    assert timed.run_id() != recipe("lamp", ("sparsity", 0.5), latency_batch_size=1, **TINY).run_id()


def test_a_sweep_skips_finished_runs_and_keeps_other_parameter_sets(monkeypatch):
    first = sweep("test-keep", ["global_magnitude"], [0.5, 0.8], [0], target_kind="sparsity", **TINY)
    files = {p: p.stat().st_mtime_ns for p in paths.records_dir("test-keep").glob("*.json")}
    other = sweep("test-keep", ["lamp"], [0.5], [0], target_kind="sparsity", **TINY)
    assert all(p.exists() and p.stat().st_mtime_ns == t for p, t in files.items())  # untouched
    assert len(pd.read_csv(paths.results_csv("test-keep"))) == 1  # the CSV holds this parameter set only
    monkeypatch.setattr(pipeline, "prune_level", lambda *a, **k: pytest.fail("recomputed a finished run"))
    again = sweep("test-keep", ["global_magnitude"], [0.5, 0.8], [0], target_kind="sparsity", **TINY)
    assert [r.to_json() for r in again.records] == [r.to_json() for r in first.records]
    assert len(other.records) == 1


def test_a_sweep_killed_with_sigkill_resumes_without_recomputing(tmp_path):
    env = {**os.environ, "WORKBENCH_REPORTS": str(tmp_path / "reports"), "WORKBENCH_CACHE": str(tmp_path / "cache")}
    script = textwrap.dedent(f"""
        from workbench.runner import sweep
        sweep("killed", ["global_magnitude", "lamp", "random"], [0.5, 0.7, 0.9], [0], target_kind="sparsity",
              **{TINY!r})
    """)
    folder = tmp_path / "reports" / "records" / "killed"
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(folder.glob("*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    assert 2 <= len(done) < 9
    assert not list(folder.glob(".*"))  # no half-written record left behind
    subprocess.run([sys.executable, "-c", script], env=env, check=True)
    after = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    assert len(after) == 9 and all(after[name] == t for name, t in done.items())


def test_serial_and_parallel_give_the_same_numbers(tmp_path, monkeypatch):
    grid = (["global_magnitude", "random"], [0.5, 0.9], [0, 1])
    serial = sweep("test-serial", *grid, target_kind="sparsity", **TINY)
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))  # train the dense models again, on workers
    parallel = sweep("test-parallel", *grid, target_kind="sparsity", executor="local", workers=2, **TINY)
    columns = ["method", "seed", "target_value", "top1", "val_top1", "nonzero_params", "flops", "dense_top1", "run_id"]
    pd.testing.assert_frame_equal(serial.results[columns], parallel.results[columns])


def test_iterative_levels_with_rewinding_and_controls_are_linked_records():
    r = recipe("global_magnitude", ("sparsity", 0.8), schedule="iterative", pruning_steps=3, rewind_step=4,
               controls=["random_reinit", "random_mask", "scratch"], **TINY)  # fmt: skip
    runs = pipeline.run_recipe(r, "test-levels")
    main = [x for x in runs if x.role == "main"]
    assert [x.level for x in main] == [1, 2, 3] and main[0].parent is None
    assert [x.parent for x in main[1:]] == [main[0].run_id, main[1].run_id]
    expected = [level_target(Sparsity(0.8), lv, 3).value for lv in (1, 2, 3)]
    assert [x.metrics["sparsity"] for x in main] == pytest.approx(expected, abs=1e-3)
    controls = [x for x in runs if x.role != "main"]
    assert [(x.role, x.level) for x in controls] == [
        (role, level) for level in (1, 2, 3) for role in ("random_reinit", "random_mask", "scratch")
    ]  # every level has its controls, linked to that level's main run and as sparse as it
    by_level = {x.level: x for x in main}
    for x in controls:
        assert x.parent == by_level[x.level].run_id
        assert x.metrics["sparsity"] == pytest.approx(by_level[x.level].metrics["sparsity"], abs=1e-3)
    rows = records.load_records("test-levels")
    assert set(rows["role"]) == {"main", "random_reinit", "random_mask", "scratch"}


def test_the_rewind_checkpoint_is_dense_training_stopped_at_that_step():
    r = recipe("global_magnitude", ("sparsity", 0.5), rewind_step=5, **{**TINY, "epochs": 2})
    bundle = store.bundle_of(r)
    run = store.train_dense(r, bundle, save_steps=(5,))
    model = store.fresh_model(r, bundle)
    training.seed_everything(r.seed)
    training.train(model, bundle.train, batch_size=64, lr=r.train.lr, momentum=r.train.momentum,
                   weight_decay=r.train.weight_decay, total_steps=store.dense_steps(r, bundle), seed=r.seed,
                   end_step=5)  # fmt: skip
    saved = run.checkpoint(5).model_state
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_measurement_vocabulary_is_the_same_for_masks_and_channels():
    masked = pipeline.run_recipe(recipe("global_magnitude", ("sparsity", 0.5), **TINY), "test-vocab")[0].metrics
    channels = pipeline.run_recipe(recipe("l1", ("flops_reduction", 2.0), **TINY), "test-vocab")[0].metrics
    for key in ("top1", "dense_top1", "params", "nonzero_params", "flops", "effective_flops", "flops_reduction",
                "effective_flops_reduction", "sparsity", "flops_unit"):  # fmt: skip
        assert key in masked and key in channels
    assert masked["flops_reduction"] == 1.0 and masked["effective_flops_reduction"] > 1.5  # masks run their zeros
    assert channels["flops_reduction"] == pytest.approx(channels["effective_flops_reduction"], rel=1e-6)
    assert "latency_ms" not in masked and "flops_p95" not in masked  # not asked, not applicable: absent


def test_latency_is_measured_against_the_dense_model_when_asked():
    rec = pipeline.run_recipe(recipe("l1", ("flops_reduction", 2.0), measure_latency=True, **TINY), "test-lat")[0]
    m = rec.metrics
    assert m["latency_ms"] > 0 and m["speedup"] == pytest.approx(m["latency_ms_dense"] / m["latency_ms"])
    assert m["latency_batch_size"] == 64 and m["latency_threads"] == 1


def test_records_list_every_family_in_one_frame():
    frame = records.load_records()
    assert list(frame.columns[: len(records.COLUMNS)]) == list(records.COLUMNS)
    assert all(isinstance(json.loads(h), dict) for h in frame["hparams"])
    assert {"magnitude", "filter-ranking"} <= set(frame["family"])


def test_channel_removal_rewinds_and_its_controls_keep_the_pruned_architecture():
    params = {**TINY, "model": "resnet20"}
    r = recipe("l1", ("flops_reduction", 3.0), schedule="iterative", pruning_steps=2, rewind_step=0,
               controls=["masked_twin", "random_reinit", "scratch"], **params)  # fmt: skip
    runs = {(x.role, x.level): x for x in pipeline.run_recipe(r, "test-channels")}
    final = runs[("main", 2)]
    assert final.metrics["flops_reduction"] >= 3.0 and runs[("main", 1)].metrics["flops_reduction"] >= 3.0**0.5
    for level in (1, 2):
        for role in ("random_reinit", "scratch"):
            assert runs[(role, level)].metrics["params"] == runs[("main", level)].metrics["params"]
        twin = runs[("masked_twin", level)].metrics
        assert twin["sparsity"] == pytest.approx(runs[("main", level)].metrics["sparsity"], abs=1e-4)
        assert twin["flops_reduction"] == 1.0
    bundle = store.bundle_of(r)
    dense = store.train_dense(r, bundle)
    restored, removed = store.restore_model(dense.model, store.run_file(final.run_id), bundle.input_shape)
    assert len(removed) == 2
    test = wdata.loader(bundle.test, 256, shuffle=False)
    assert metrics.top1(restored, test) == final.metrics["top1"]


def test_a_record_target_reads_back_as_the_typed_target():
    from workbench.targets import LatencyBudget, from_dict

    for target in (Sparsity(0.9), LatencyBudget(5.0, batch_size=8, threads=2)):
        assert from_dict(target.as_dict()) == target
