import json

import pandas as pd
import pytest

from workbench import experiment, paths, records


@pytest.fixture(scope="module")
def sweep():
    return experiment.run_sweep(
        "test-sweep", "magnitude", ["global_magnitude", "random"], [0.5, 0.8], [0, 1],
        epochs=1, finetune_epochs=1,
    )  # fmt: skip


def test_records_round_trip(sweep):
    for record in sweep.records:
        again = records.RunRecord.from_json(record.to_json())
        assert again == record
        assert json.loads(record.to_json())["metrics"]["top1"] == record.metrics["top1"]  # real numbers, no text


def test_csv_has_the_required_columns_and_fractions(sweep):
    table = pd.read_csv(paths.results_csv("test-sweep"))
    assert list(table.columns[: len(records.COLUMNS)]) == list(records.COLUMNS)
    assert len(table) == 2 * 2 * 2
    assert table["top1"].between(0, 1).all() and table["dense_top1"].between(0, 1).all()
    assert (table["sparsity"] - table["target_sparsity"]).abs().max() < 1e-3


def test_load_records_returns_every_record(sweep):
    frame = records.load_records()
    mine = frame[frame["notebook"] == "test-sweep"]
    assert len(mine) == 8 and set(mine["method"]) == {"global_magnitude", "random"}


def test_provenance_is_recorded(sweep):
    made_by = sweep.records[0].provenance
    assert made_by["versions"]["torch"] and made_by["time_utc"] and "git_commit" in made_by
    assert sweep.records[0].config["seed"] in (0, 1)


def test_same_seed_same_numbers(sweep):
    again = experiment.run_sweep(
        "test-sweep-again", "magnitude", ["global_magnitude", "random"], [0.5, 0.8], [0, 1],
        epochs=1, finetune_epochs=1,
    )  # fmt: skip
    cols = ["method", "seed", "target_sparsity", "top1", "nonzero_params"]
    pd.testing.assert_frame_equal(sweep.results[cols], again.results[cols])


def test_rerunning_a_notebook_replaces_its_records(sweep):
    experiment.run_sweep("test-sweep-again", "magnitude", ["lamp"], [0.5], [0], epochs=1, finetune_epochs=1)
    assert len(records.load_records("test-sweep-again")) == 1
