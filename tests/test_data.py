import pickle

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import TensorDataset

from workbench import data


def _labels(dataset):
    return dataset.tensors[1]


def _rows(dataset):
    return {tuple(row.flatten().tolist()) for row in dataset.tensors[0]}


def test_digits_split_is_stratified_and_seeded():
    a, b = data.load("digits"), data.load("digits")
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert len(a.test) == 450 and len(a.val) == round(0.1 * 1347) and a.train_plain is a.train
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a, split).tensors[0], getattr(b, split).tensors[0])  # same seed, same split
    test_counts = torch.bincount(_labels(a.test), minlength=10)
    val_counts = torch.bincount(_labels(a.val), minlength=10)
    train_counts = torch.bincount(_labels(a.train), minlength=10)
    all_counts = test_counts + val_counts + train_counts
    assert torch.all((test_counts - 0.25 * all_counts).abs() <= 1)  # stratified: each class in proportion
    assert torch.all((val_counts - 0.1 * (val_counts + train_counts)).abs() <= 1)
    other = data.load("digits", split_seed=1)
    assert not torch.equal(_labels(other.test), _labels(a.test))
    assert not torch.equal(_labels(other.val), _labels(a.val))


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_embedded_splits_are_disjoint(name):
    bundle = data.load(name)
    train, val, test = _rows(bundle.train), _rows(bundle.val), _rows(bundle.test)
    assert len(train) == len(bundle.train) and len(val) == len(bundle.val)  # no duplicate rows to fool the check
    assert not (train & val) and not (train & test) and not (val & test)


def test_val_fraction_zero_gives_an_empty_validation_split_and_bad_values_fail():
    bundle = data.load("digits", val_fraction=0.0)
    assert len(bundle.val) == 0 and len(bundle.train) == 1347
    with pytest.raises(ValueError, match="val_fraction must be a number in \\[0, 0.5\\), got 0.5"):
        data.load("digits", val_fraction=0.5)
    with pytest.raises(ValueError, match="unknown dataset 'digit' \\(did you mean digits\\?\\)"):
        data.load("digit")


def test_mnist1d_is_generated_offline(monkeypatch):
    import mnist1d.data

    monkeypatch.setattr(mnist1d.data, "get_dataset", lambda *a, **k: pytest.fail("network loader called"))
    bundle = data.load("mnist1d")
    assert bundle.input_shape == (1, 40) and len(bundle.train) == 3600 and len(bundle.val) == 400
    assert len(bundle.test) == 1000  # its own test set; validation comes out of its 4,000 training sequences
    val_counts = torch.bincount(_labels(bundle.val), minlength=10)
    all_counts = val_counts + torch.bincount(_labels(bundle.train), minlength=10)
    assert torch.all((val_counts - 0.1 * all_counts).abs() <= 1)  # stratified


def test_mnist1d_is_generated_once_per_seed_and_read_back_unchanged(tmp_path, monkeypatch):
    import mnist1d.data

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    generated = data._mnist1d_arrays(45)
    assert len(list((tmp_path / "data").glob("mnist1d-*-seed45.npz"))) == 1
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda *a, **k: pytest.fail("generated again"))
    again = data._mnist1d_arrays(45)
    assert all(np.array_equal(generated[k], again[k]) for k in ("x", "y", "x_test", "y_test"))
    assert not list((tmp_path / "data").glob(".*.tmp"))


def test_loader_order_is_fixed_by_seed():
    bundle = data.load("digits")
    first = [y for _, y in data.loader(bundle.train, 64, True, seed=3)]
    again = [y for _, y in data.loader(bundle.train, 64, True, seed=3)]
    other = [y for _, y in data.loader(bundle.train, 64, True, seed=4)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def _write_fake_cifar10(root, per_batch=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8), "labels": list(range(per_batch))}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))


def _fake_cifar(tmp_path, monkeypatch, **kwargs):
    _write_fake_cifar10(tmp_path, per_batch=8)  # 40 training images, labels 0..7 five times each
    # the fake files cannot match torchvision's MD5 sums; everything else is torchvision's real loader
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    return data.load("cifar10", root=tmp_path, **kwargs)


def test_cifar10_loads_through_torchvision_from_the_data_root(tmp_path, monkeypatch):
    bundle = _fake_cifar(tmp_path, monkeypatch)
    assert bundle.input_shape == (3, 32, 32) and bundle.num_classes == 10
    assert len(bundle.train) == 36 and len(bundle.val) == 4 and len(bundle.test) == 8
    x, y = next(iter(data.loader(bundle.test, 8, shuffle=False)))
    assert x.shape == (8, 3, 32, 32) and y.tolist() == list(range(8))
    train, val = set(bundle.train.indices), set(bundle.val.indices)
    assert not (train & val) and train | val == set(range(40))
    assert set(bundle.train_plain.indices) == train


def _plain(raw_image):
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2470, 0.2435, 0.2616])
    x = torch.as_tensor(raw_image).permute(2, 0, 1).float() / 255
    return (x - mean[:, None, None]) / std[:, None, None]


def test_cifar10_validation_is_unaugmented_and_training_is_augmented(tmp_path, monkeypatch):
    bundle = _fake_cifar(tmp_path, monkeypatch)
    raw = bundle.val.dataset.data
    for j, i in enumerate(bundle.val.indices):
        assert torch.allclose(bundle.val[j][0], _plain(raw[i]), atol=1e-6)  # no crop, no flip
    i = bundle.train.indices[0]
    torch.manual_seed(0)
    views = [bundle.train[0][0] for _ in range(8)]
    assert any(not torch.allclose(v, _plain(raw[i]), atol=1e-6) for v in views)  # crops and flips happen
    assert torch.allclose(bundle.train_plain[0][0], _plain(raw[i]), atol=1e-6)


def test_cifar10_split_is_seeded_and_stratified(tmp_path, monkeypatch):
    a = _fake_cifar(tmp_path, monkeypatch, val_fraction=0.2)
    b = data.load("cifar10", root=tmp_path, val_fraction=0.2)
    c = data.load("cifar10", root=tmp_path, val_fraction=0.2, split_seed=1)
    assert a.val.indices == b.val.indices and a.val.indices != c.val.indices
    labels = [a.val.dataset.targets[i] for i in a.val.indices]
    assert sorted(labels) == list(range(8))  # 8 of 40: one per class


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion-mnist"])
def test_missing_files_say_where_to_put_them_in_one_line_and_download_nothing(tmp_path, monkeypatch, name):
    import torchvision.datasets.utils as tv_utils

    def no_network(*args, **kwargs):
        pytest.fail("a download was attempted")

    for fn in ("download_url", "download_and_extract_archive", "download_file_from_google_drive"):
        monkeypatch.setattr(tv_utils, fn, no_network)
    with pytest.raises(FileNotFoundError, match=f"{name} not found: put torchvision's {name} files in {tmp_path}") as e:
        data.load(name, root=tmp_path)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # nothing written either


def test_calibration_batch_is_labelled_bounded_and_seeded():
    bundle = data.load("digits")
    x, y = data.calibration_batch(bundle, size=16, seed=1)
    assert x.shape == (16, 1, 8, 8) and y.shape == (16,) and y.dtype == torch.long
    x2, y2 = data.calibration_batch(bundle, size=16, seed=1)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, data.calibration_batch(bundle, size=16, seed=2)[0])
    assert len(data.calibration_batch(bundle, size=10_000)[0]) == len(bundle.train)  # bounded by the split


@pytest.mark.parametrize("split", ["train", "val"])
def test_calibration_comes_from_train_or_val_only(split):
    bundle = data.load("digits")
    x, y = data.calibration_batch(bundle, size=64, seed=0, split=split)
    source = getattr(bundle, split)
    rows = {tuple(r.flatten().tolist()): int(label) for r, label in zip(*source.tensors, strict=True)}
    assert all(rows.get(tuple(r.flatten().tolist())) == int(label) for r, label in zip(x, y, strict=True))
    assert not _rows(TensorDataset(x)) & _rows(bundle.test)


def test_calibration_refuses_the_test_split():
    bundle = data.load("digits")
    with pytest.raises(ValueError, match="calibration split must be one of train, val, got 'test'") as e:
        data.calibration_batch(bundle, split="test")
    assert "\n" not in str(e.value)


def test_calibration_on_cifar_is_unaugmented_and_leaves_the_global_generator_alone(tmp_path, monkeypatch):
    bundle = _fake_cifar(tmp_path, monkeypatch)
    torch.manual_seed(7)
    expected_next = torch.rand(1)
    torch.manual_seed(7)
    x, y = data.calibration_batch(bundle, size=5, seed=3)
    assert torch.equal(torch.rand(1), expected_next)
    index = torch.randperm(36, generator=torch.Generator().manual_seed(3))[:5]
    raw, targets = bundle.train_plain.dataset.data, bundle.train_plain.dataset.targets
    for row, label, j in zip(x, y, index.tolist(), strict=True):
        i = bundle.train_plain.indices[j]
        assert torch.allclose(row, _plain(raw[i]), atol=1e-6) and int(label) == targets[i]
