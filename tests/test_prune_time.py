"""`workbench bench prune-time`: one JSON object per criterion with the fields readers rely on, targets reached."""

import argparse
import json

import pytest

from workbench import bench

FIELDS = {
    "model", "criterion", "target", "allocation", "round_to", "calibration_size", "seconds", "flops_reduction",
    "tp_ratio", "tp_step_seconds", "tp_total_seconds", "seconds_over_tp_total", "threads",
}  # fmt: skip


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    bench.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_prune_time_prints_one_json_object_per_criterion(capsys):
    argv = ["bench", "prune-time", "--model", "small_cnn", "--calibration-size", "8", "--json"]
    assert _run([*argv, "--criteria", "l1,thinet", "--flops-reduction", "1.5"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["criterion"] for row in rows] == ["l1", "thinet"]
    for row in rows:
        assert set(row) >= FIELDS
        assert row["model"] == "small_cnn" and row["calibration_size"] == 8
        assert row["target"] == {"flops_reduction": 1.5} and row["flops_reduction"] >= 1.5
        assert row["seconds"] > 0 and row["tp_total_seconds"] >= row["tp_step_seconds"] > 0


def test_every_filter_ranking_criterion_reaches_the_flops_target():
    rows = bench.prune_time("small_cnn", flops_reduction=2.0, calibration_size=8)
    assert {row["criterion"] for row in rows} == {"apoz", "fpgm", "hrank", "l1", "l2", "random_filter", "thinet"}
    assert all(row["flops_reduction"] >= 2.0 and set(row) >= FIELDS for row in rows)
    assert len({row["flops_reduction"] for row in rows}) == 1  # uniform allocation: the same counts whatever the scores


def test_unknown_criterion_fails_in_one_line():
    with pytest.raises(ValueError, match="unknown criterion 'l3'; known: apoz, fpgm, hrank, l1, l2"):
        bench.prune_time("small_cnn", criteria=["l3"])
