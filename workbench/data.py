"""Data sets by name with train / validation / test splits: embedded (digits, mnist1d) and torchvision ones.

The validation split is carved out of the training data (seeded by `split_seed`, stratified by class when every
class fits in both parts) and serves selection and calibration; the test split only produces reported accuracy.
torchvision sets are read from a data root and never downloaded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from workbench import checks, paths
from workbench.records import write_atomic
from workbench.registry import Registry

DATASETS = Registry("dataset")
CALIBRATION_SPLITS = ("train", "val")


@dataclass
class DataBundle:
    """A data set ready to train on.

    `train` may be augmented; `train_plain` is the same examples without augmentation (for calibration and
    training accuracy; the same object as `train` when there is no augmentation). `val` is never augmented.
    """

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    train_plain: Dataset | None = None

    def __post_init__(self):
        if self.train_plain is None:
            self.train_plain = self.train


def load(name: str, split_seed: int = 0, root: str | Path | None = None, val_fraction: float = 0.1) -> DataBundle:
    """Load a registered data set with its train / validation / test splits.

    Args:
        name: a name from DATASETS (digits, mnist1d, cifar10, cifar100, mnist, fashion-mnist).
        split_seed: seed of the split (and, for mnist1d, of the generated data).
        root: data root of the torchvision sets (default `paths.data_root()`); ignored by embedded sets.
        val_fraction: share of the training data held out for validation, in [0, 0.5).
    Returns:
        The DataBundle.
    """
    factory = DATASETS.get(name)
    checks.integer("split_seed", split_seed, 0)
    checks.number("val_fraction", val_fraction, 0.0, 0.5, open_high=True)
    if DATASETS.info(name).get("embedded"):
        return factory(split_seed, val_fraction)
    return factory(Path(root) if root is not None else paths.data_root(), split_seed, val_fraction)


def loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A single-process loader whose shuffling order is fixed by `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0)


def calibration_batch(
    bundle: DataBundle, size: int = 128, seed: int = 0, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, labelled batch for data-dependent methods, drawn from the train or validation split.

    Training examples come without augmentation (`bundle.train_plain`). The test split is refused: it only
    produces reported accuracy.

    Args:
        bundle: the data.
        size: examples wanted; fewer when the split is smaller.
        seed: seed of the draw.
        split: "train" or "val".
    Returns:
        (inputs, labels): a float tensor N x input_shape and a long tensor N.
    """
    if split not in CALIBRATION_SPLITS:
        raise ValueError(
            f"calibration split must be one of {', '.join(CALIBRATION_SPLITS)}, got {split!r} "
            "(the test split only produces reported accuracy)"
        )
    checks.integer("size", size, 1)
    dataset = bundle.train_plain if split == "train" else bundle.val
    if len(dataset) == 0:
        raise ValueError(f"the {split} split of {bundle.name} is empty (val_fraction=0?); use split='train'")
    index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:size]
    if isinstance(dataset, TensorDataset):
        x, y = dataset.tensors[0][index], dataset.tensors[1][index]
    else:
        with torch.random.fork_rng(devices=[]):  # any random transform is seeded, the caller's RNG untouched
            torch.manual_seed(seed)
            items = [dataset[int(i)] for i in index]
        x, y = torch.stack([item[0] for item in items]), torch.as_tensor([int(item[1]) for item in items])
    return x, y.long()


def _val_indices(labels: np.ndarray, val_fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices into `labels`: a seeded split, stratified when every class fits in both parts."""
    from sklearn.model_selection import train_test_split

    n = len(labels)
    n_val = 0 if val_fraction == 0 else max(1, round(val_fraction * n))
    everything = np.arange(n)
    if n_val == 0:
        return everything, everything[:0]
    present = np.unique(labels)
    fits = min(n_val, n - n_val) >= len(present) and np.bincount(labels)[present].min() >= 2
    stratify = labels if fits else None  # otherwise some class could not be in both parts
    train, val = train_test_split(everything, test_size=n_val, random_state=split_seed, stratify=stratify)
    return np.sort(train), np.sort(val)


def _tensors(x, y) -> TensorDataset:
    return TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long))


def _embedded_bundle(name, x_train, y_train, x_test, y_test, num_classes, split_seed, val_fraction) -> DataBundle:
    y_train = np.asarray(y_train)
    train_index, val_index = _val_indices(y_train, val_fraction, split_seed)
    train = _tensors(x_train[train_index], y_train[train_index])
    val = _tensors(x_train[val_index], y_train[val_index])
    test = _tensors(x_test, y_test)
    return DataBundle(name, train, val, test, num_classes, tuple(train.tensors[0].shape[1:]))


@DATASETS.register("digits", embedded=True, summary="scikit-learn's 1,797 handwritten digits, 8x8")
def _digits(split_seed: int, val_fraction: float) -> DataBundle:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # N x 1 x 8 x 8 in [0, 1]
    x = (x - 0.5) / 0.5
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, digits.target, test_size=0.25, random_state=split_seed, stratify=digits.target
    )
    return _embedded_bundle("digits", x_tr, y_tr, x_te, y_te, 10, split_seed, val_fraction)


@DATASETS.register("mnist1d", embedded=True, summary="MNIST-1D (Greydanus), 5,000 sequences of 40, generated")
def _mnist1d(split_seed: int, val_fraction: float) -> DataBundle:
    data = _mnist1d_arrays(42 + split_seed)  # 42 is the published default
    x_tr, x_te = data["x"][:, None], data["x_test"][:, None]
    return _embedded_bundle("mnist1d", x_tr, data["y"], x_te, data["y_test"], 10, split_seed, val_fraction)


def _mnist1d_arrays(seed: int) -> dict[str, np.ndarray]:
    """MNIST-1D generated offline with the published arguments and `seed` (get_dataset would try the network),
    kept under the cache as .npz per seed and package version: generating costs 1.7 s, reading it back 10 ms."""
    from importlib.metadata import version

    path = paths.cache_dir() / "data" / f"mnist1d-{version('mnist1d')}-seed{seed}.npz"
    if path.is_file():
        with np.load(path) as saved:
            return {k: saved[k] for k in ("x", "y", "x_test", "y_test")}
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    data = {k: v for k, v in make_dataset(args).items() if k in ("x", "y", "x_test", "y_test")}
    buffer = io.BytesIO()
    np.savez(buffer, **data)
    write_atomic(path, buffer.getvalue())  # readers see the whole file or none
    return data


_VISION = {
    # name: (torchvision class, folder it expects under the root, classes, mean, std)
    "cifar10": ("CIFAR10", "cifar-10-batches-py", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ("CIFAR100", "cifar-100-python", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ("MNIST", "MNIST/raw", 10, (0.1307,), (0.3081,)),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw", 10, (0.2860,), (0.3530,)),
}


def _vision_factory(name: str):
    cls_name, folder, num_classes, mean, std = _VISION[name]

    def factory(root: Path, split_seed: int, val_fraction: float) -> DataBundle:
        import torchvision
        from torchvision import transforms as T

        if not (root / folder).exists():
            raise FileNotFoundError(
                f"{name} not found: put torchvision's {name} files in {root / folder} "
                f"(data root {root}; set WORKBENCH_DATA or pass root=); nothing is downloaded at run time"
            )
        cls = getattr(torchvision.datasets, cls_name)
        normalize = [T.ToTensor(), T.Normalize(mean, std)]
        augment = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if name.startswith("cifar") else []
        plain = T.Compose(normalize)
        full_train = cls(str(root), train=True, download=False, transform=T.Compose(augment + normalize))
        full_plain = cls(str(root), train=True, download=False, transform=plain) if augment else full_train
        test = cls(str(root), train=False, download=False, transform=plain)
        train_index, val_index = _val_indices(np.asarray(full_train.targets), val_fraction, split_seed)
        train_index, val_index = train_index.tolist(), val_index.tolist()
        return DataBundle(
            name,
            Subset(full_train, train_index),
            Subset(full_plain, val_index),
            test,
            num_classes,
            tuple(test[0][0].shape),
            train_plain=Subset(full_plain, train_index),
        )

    return factory


for _name in _VISION:
    DATASETS.register(_name, embedded=False, summary=f"torchvision {_VISION[_name][0]} from the data root")(
        _vision_factory(_name)
    )
