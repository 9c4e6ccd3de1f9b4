"""Shared generators for the tests: seeded random nets and the paper's reference decoder."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

_ROOT = Path(__file__).resolve().parents[1]
_SHARED = [Path(p) for p in [os.environ.get("GANINVERT_SHARED", "")] if p] + [_ROOT / "shared", _ROOT.parent / "shared"]
REFERENCE = next((d / "reference_nets" / "trained_vae_20_60_784_nobias.pth" for d in _SHARED
                  if (d / "reference_nets").is_dir()), _SHARED[-1] / "reference_nets" / "trained_vae_20_60_784_nobias.pth")

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def random_mlp(dims, *, act="relu", out_act=None, bias=True, seed=0, dtype=torch.float64) -> nn.Sequential:
    """Gaussian MLP (rows N(0, 1/n)) with ``act`` on hidden layers and ``out_act`` (default
    ``act``) on the output; in eval mode."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i, (k, n) in enumerate(zip(dims[:-1], dims[1:])):
        lin = nn.Linear(k, n, bias=bias)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(n, k, generator=g) / math.sqrt(n))
            if bias:
                lin.bias.copy_(0.1 * torch.randn(n, generator=g))
        last = i == len(dims) - 2
        layers += [lin, ACTIVATIONS[(out_act or act) if last else act]()]
    return nn.Sequential(*layers).to(dtype).eval()


def latents(n, k, *, seed=1, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()
    return (a - b).norm(dim=1) / b.norm(dim=1)


class DCGANish(nn.Module):
    """A DCGAN-shaped generator written as published ones are: a class whose forward views the
    latent as (B, C, 1, 1) and runs ConvTranspose2d + BatchNorm2d + ReLU blocks into Tanh."""

    def __init__(self, nz=8, seed=0):
        super().__init__()
        self.nz = nz
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, 4, 4, 1, 0, bias=False), nn.BatchNorm2d(4), nn.ReLU(True),
            nn.ConvTranspose2d(4, 4, 4, 2, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(True),
            nn.ConvTranspose2d(4, 3, 4, 2, 1, bias=True), nn.Tanh())
        g = torch.Generator().manual_seed(seed + 1)
        for m in self.main:
            if isinstance(m, nn.ConvTranspose2d):
                with torch.no_grad():
                    m.weight.copy_(0.3 * torch.randn(m.weight.shape, generator=g))
                    if m.bias is not None:
                        m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, nn.BatchNorm2d):  # non-trivial running statistics to fold
                m.running_mean.copy_(0.2 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.weight.data.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))

    def forward(self, z):
        return self.main(z.view(-1, self.nz, 1, 1))


@pytest.fixture(scope="session")
def reference_decoder() -> nn.Sequential:
    """The paper's trained 20-60-784 decoder (``../shared``), float64; skipped when absent."""
    if not REFERENCE.exists():
        pytest.skip(f"reference checkpoint not found at {REFERENCE}")
    sd = torch.load(REFERENCE, map_location="cpu", weights_only=True)
    dec = nn.Sequential(nn.Linear(20, 60, bias=False), nn.ReLU(), nn.Linear(60, 784, bias=False), nn.ReLU())
    with torch.no_grad():
        dec[0].weight.copy_(sd["fc3.weight"])
        dec[2].weight.copy_(sd["fc4.weight"])
    return dec.double().eval()
