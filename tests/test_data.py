import pickle

import numpy as np
import pytest
import torch
import torchvision

from workbench import data


def test_digits_split_is_stratified_and_seeded():
    a, b = data.load("digits"), data.load("digits")
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10
    assert len(a.train) + len(a.test) == 1797
    assert torch.equal(a.test.tensors[0], b.test.tensors[0])
    test_counts = torch.bincount(a.test.tensors[1], minlength=10)
    all_counts = test_counts + torch.bincount(a.train.tensors[1], minlength=10)
    assert torch.all((test_counts - 0.25 * all_counts).abs() <= 1)  # stratified: each class in proportion
    assert not torch.equal(data.load("digits", split_seed=1).test.tensors[1], a.test.tensors[1])


def test_mnist1d_is_generated_offline(monkeypatch):
    import mnist1d.data

    monkeypatch.setattr(mnist1d.data, "get_dataset", lambda *a, **k: pytest.fail("network loader called"))
    bundle = data.load("mnist1d")
    assert bundle.input_shape == (1, 40) and len(bundle.train) == 4000 and len(bundle.test) == 1000


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


def test_cifar10_loads_through_torchvision_from_the_data_root(tmp_path, monkeypatch):
    _write_fake_cifar10(tmp_path)
    # the fake files cannot match torchvision's MD5 sums; everything else is torchvision's real loader
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    bundle = data.load("cifar10", root=tmp_path)
    assert bundle.input_shape == (3, 32, 32) and bundle.num_classes == 10
    assert len(bundle.train) == 20 and len(bundle.test) == 4
    x, y = next(iter(data.loader(bundle.test, 4, shuffle=False)))
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion-mnist"])
def test_missing_files_say_where_to_put_them(tmp_path, name):
    with pytest.raises(FileNotFoundError, match=f"{name} not found: put torchvision's {name} files in {tmp_path}"):
        data.load(name, root=tmp_path)


def test_calibration_batch_is_bounded_and_seeded():
    bundle = data.load("digits")
    a = data.calibration_batch(bundle, size=16, seed=1)
    assert a.shape == (16, 1, 8, 8)
    assert torch.equal(a, data.calibration_batch(bundle, size=16, seed=1))
