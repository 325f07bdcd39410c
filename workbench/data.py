"""Data sets by name: embedded (digits, mnist1d) and torchvision ones read from a data root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from workbench import paths
from workbench.registry import Registry

DATASETS = Registry("dataset")


@dataclass
class DataBundle:
    """A data set ready to train on: train and test splits, class count and one input's shape."""

    name: str
    train: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]


def load(name: str, split_seed: int = 0, root: str | Path | None = None) -> DataBundle:
    """Load a registered data set; `root` only matters for the torchvision ones."""
    factory = DATASETS.get(name)
    if DATASETS.info(name).get("embedded"):
        return factory(split_seed)
    return factory(Path(root) if root is not None else paths.data_root())


def loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A single-process loader whose shuffling order is fixed by `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0)


def calibration_batch(bundle: DataBundle, size: int = 128, seed: int = 0) -> torch.Tensor:
    """A fixed batch of training inputs for data-dependent methods (bounded in size)."""
    index = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(seed))[:size]
    return torch.stack([bundle.train[int(i)][0] for i in index])


def _tensor_bundle(name, x_train, y_train, x_test, y_test, num_classes) -> DataBundle:
    xt, xs = torch.as_tensor(x_train, dtype=torch.float32), torch.as_tensor(x_test, dtype=torch.float32)
    yt, ys = torch.as_tensor(y_train, dtype=torch.long), torch.as_tensor(y_test, dtype=torch.long)
    return DataBundle(name, TensorDataset(xt, yt), TensorDataset(xs, ys), num_classes, tuple(xt.shape[1:]))


@DATASETS.register("digits", embedded=True, summary="scikit-learn's 1,797 handwritten digits, 8x8")
def _digits(split_seed: int) -> DataBundle:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # N x 1 x 8 x 8 in [0, 1]
    x = (x - 0.5) / 0.5
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, digits.target, test_size=0.25, random_state=split_seed, stratify=digits.target
    )
    return _tensor_bundle("digits", x_tr, y_tr, x_te, y_te, 10)


@DATASETS.register("mnist1d", embedded=True, summary="MNIST-1D (Greydanus), 5,000 sequences of 40, generated")
def _mnist1d(split_seed: int) -> DataBundle:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = 42 + split_seed  # 42 is the published default
    data = make_dataset(args)  # generated offline; get_dataset would try the network
    x_tr, x_te = data["x"][:, None], data["x_test"][:, None]
    return _tensor_bundle("mnist1d", x_tr, data["y"], x_te, data["y_test"], 10)


_VISION = {
    # name: (torchvision class, folder it expects under the root, classes, channels, mean, std)
    "cifar10": ("CIFAR10", "cifar-10-batches-py", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ("CIFAR100", "cifar-100-python", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ("MNIST", "MNIST/raw", 10, (0.1307,), (0.3081,)),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw", 10, (0.2860,), (0.3530,)),
}


def _vision_factory(name: str):
    cls_name, folder, num_classes, mean, std = _VISION[name]

    def factory(root: Path) -> DataBundle:
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
        train = cls(str(root), train=True, download=False, transform=T.Compose(augment + normalize))
        test = cls(str(root), train=False, download=False, transform=T.Compose(normalize))
        shape = tuple(test[0][0].shape)
        return DataBundle(name, train, test, num_classes, shape)

    return factory


for _name in _VISION:
    DATASETS.register(_name, embedded=False, summary=f"torchvision {_VISION[_name][0]} from the data root")(
        _vision_factory(_name)
    )
