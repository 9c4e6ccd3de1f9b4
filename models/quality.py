"""One quality measure for every shipped generator: a small digit classifier trained on the
train split only (never the held-out digits), applied to 1,000 samples.

Reported per generator: the classifier's mean confidence (max softmax) on the samples, the
share it classifies with confidence > 0.9, the normalised entropy of the predicted class
histogram (1 = all ten digits equally often, catches mode collapse), and the Frechet distance
between the samples and the 1,000 held-out digits in the classifier's 128-d feature space
(real train digits vs held-out give the floor), and the stuck-pixel share: the largest share of
samples in which one pixel is on (> 0.5) among the pixels real train digits have on in under 1%
(a collapsed output unit shows as a bright dot in nearly every sample; real digits score 0.01
at most by construction).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from .data import load_mnist
from .registry import HERE, read_tensor_dict

CLASSIFIER = HERE / "classifier.pt"


class DigitClassifier(nn.Module):
    """LeNet-style CNN on [0, 1] images; ``features`` is the 128-d penultimate layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(64 * 7 * 7, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_classifier(*, epochs: int = 8, seed: int = 0, path: Path = CLASSIFIER) -> float:
    """Train on the train split with light augmentation; save; return held-out accuracy."""
    g = torch.Generator().manual_seed(seed)
    x, y = load_mnist(split="train")
    model = DigitClassifier()
    with torch.no_grad():  # seeded init, independent of the global RNG
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.05 if p.dim() > 1 else 0.0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            shift = torch.randint(-2, 3, (2,), generator=g).tolist()
            xb = torch.roll(x[idx], shifts=shift, dims=(2, 3))
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, path)
    return held_out_accuracy(model)


def load_classifier(path: Path = CLASSIFIER) -> DigitClassifier:
    model = DigitClassifier()
    model.load_state_dict(read_tensor_dict(path))
    return model.eval()


@torch.no_grad()
def held_out_accuracy(model: DigitClassifier) -> float:
    x, y = load_mnist(split="held_out")
    return (model(x).argmax(1) == y).float().mean().item()


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    eps = 1e-6 * np.eye(a.shape[1])  # dead ReLU features make the covariances singular
    ca, cb = np.cov(a, rowvar=False) + eps, np.cov(b, rowvar=False) + eps
    covmean = scipy.linalg.sqrtm(ca @ cb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))


@torch.no_grad()
def held_out_features(classifier: DigitClassifier) -> np.ndarray:
    """The classifier's features of the held-out digits: the Frechet distance's reference."""
    held, _ = load_mnist(split="held_out")
    return classifier.features(held).numpy()


@torch.no_grad()
def stuck_pixel_share(images01: torch.Tensor, real01: torch.Tensor, *, on: float = 0.5,
                      rare: float = 0.01) -> tuple[float, tuple[int, int]]:
    """The largest per-pixel share of ``images01`` (N, 1, H, W) with the pixel ``> on``, among
    pixels that are ``> on`` in under ``rare`` of ``real01``; and that pixel's (row, col)."""
    real_on = (real01 > on).float().mean(0).flatten()
    gen_on = (images01 > on).float().mean(0).flatten()
    share = torch.where(real_on < rare, gen_on, torch.zeros_like(gen_on))
    i = int(share.argmax())
    return share[i].item(), divmod(i, images01.shape[-1])


@torch.no_grad()
def sample_quality(images01: torch.Tensor, classifier: DigitClassifier,
                   reference: np.ndarray | None = None, real: torch.Tensor | None = None) -> dict[str, float]:
    """Metrics for samples ``(N, 1, 28, 28)`` in [0, 1] (see module doc); ``reference``:
    :func:`held_out_features`, and ``real``: the train digits the stuck-pixel share compares
    with, each loaded here when not given (pass them when scoring several generators)."""
    probs = classifier(images01.float()).softmax(1)
    conf = probs.max(1).values
    hist = torch.bincount(probs.argmax(1), minlength=10).float()
    p = hist / hist.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum() / np.log(10))
    reference = held_out_features(classifier) if reference is None else reference
    fd = _frechet(classifier.features(images01.float()).numpy(), reference)
    stuck, where = stuck_pixel_share(images01, load_mnist(split="train")[0] if real is None else real)
    return {"stuck_pixel_share": stuck, "stuck_pixel": list(where), "confidence": conf.mean().item(), "confident_share": (conf > 0.9).float().mean().item(),
            "class_entropy": entropy, "frechet": fd}


@torch.no_grad()
def real_floor(classifier: DigitClassifier, n: int = 1000, reference: np.ndarray | None = None,
               real: torch.Tensor | None = None) -> dict[str, float]:
    """The same metrics on 1,000 real train digits (``real``, loaded when not given): what a
    perfect generator would score."""
    x = load_mnist(split="train")[0] if real is None else real
    g = torch.Generator().manual_seed(0)
    return sample_quality(x[torch.randperm(len(x), generator=g)[:n]], classifier, reference, x)
