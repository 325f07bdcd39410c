"""Run profiles (notebooks/profiles/*.yaml): every profile's parameters pass every notebook's own checks before any
kernel starts; precedence profile < -f < -p; unknown names are one line; the index shows them."""

import pickle

import numpy as np
import pytest
import torchvision

from workbench import batch, profiles
from workbench.notebook_checks import parameters


def plans(profile: str, file_params=None, overrides=None) -> dict:
    chosen = batch.notebooks()
    resolved = batch.resolve(chosen, file_params or {}, overrides or {}, profiles.load(profile))
    return {nb.stem: params for nb, params in resolved}


def check_all(profile: str) -> dict:
    resolved = plans(profile)
    for stem, params in resolved.items():
        batch.check_parameters(batch.paths.notebooks_dir() / f"{stem}.ipynb", params)
    return resolved


def test_the_three_profiles_exist_and_describe_themselves():
    assert {"quick", "full", "paper"} <= set(profiles.names())
    assert all(len(profiles.describe(name)) > 40 for name in profiles.names())


def test_quick_is_the_notebooks_own_defaults():
    assert profiles.load("quick") == {}
    assert all(params == {} for params in plans("quick").values())


def test_full_passes_every_notebooks_checks_with_three_seeds_or_more(quick_timer):
    resolved = check_all("full")
    for stem, params in resolved.items():
        if "seeds" in parameters(batch.paths.notebooks_dir() / f"{stem}.ipynb"):
            assert len(params["seeds"]) >= 3, stem
            assert params["executor"] == "local", stem


def test_paper_is_cifar10_with_resnet56_or_vgg16_and_passes_the_checks_given_the_data(
    tmp_path, monkeypatch, quick_timer
):
    with pytest.raises(ValueError, match="cifar10 not found"):
        check_all("paper")  # no CIFAR-10 under the data root: refused in one line before anything runs
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch_ = {"data": np.zeros((80, 3072), dtype=np.uint8), "labels": [i % 10 for i in range(80)]}
        (folder / name).write_bytes(pickle.dumps(batch_))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)  # fake files
    # 400 training images: enough for the calibration sizes the checks compare with the training split
    resolved = check_all("paper")
    trained = {stem: p for stem, p in resolved.items() if "model" in p}
    assert len(trained) == 9
    assert all(p["dataset"] == "cifar10" and p["model"] in ("resnet56", "vgg16_cifar") for p in trained.values())


def test_the_file_and_the_overrides_apply_over_the_profile():
    resolved = plans("full", {"02-filter-ranking": {"epochs": 7}, "seeds": [5, 6, 7]}, {"finetune_epochs": 1})
    assert resolved["02-filter-ranking"]["epochs"] == 7 and resolved["01-magnitude"]["epochs"] == 30
    assert resolved["01-magnitude"]["seeds"] == [5, 6, 7] and resolved["08-lottery-tickets"]["seeds"] == [5, 6, 7]
    assert resolved["07-automated"]["finetune_epochs"] == 1 and resolved["07-automated"]["model"] == "resnet56"


def test_an_unknown_profile_or_a_bad_profile_parameter_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown profile 'fast'; known: full, paper, quick"):
        profiles.load("fast")
    monkeypatch.setattr(profiles, "folder", lambda: tmp_path)
    (tmp_path / "broken.yaml").write_text("# a profile with a typo\nsedes: [0, 1, 2]\n")
    with pytest.raises(ValueError, match=r"unknown parameter 'sedes' \(did you mean seeds"):
        batch.resolve(batch.notebooks(), {}, {}, profiles.load("broken"))


def test_the_index_lists_every_profile_with_its_file():
    text = "\n".join(batch._profiles_section())
    for name in profiles.names():
        assert f"notebooks/profiles/{name}.yaml" in text
    assert "resnet56" in text and "cifar10" in text  # the files' contents are shown
