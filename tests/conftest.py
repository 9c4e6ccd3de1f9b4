"""Shared generators for the tests: seeded random nets and the paper's reference decoder."""

from __future__ import annotations

import os

import pytest
import torch
from ganinvert.models.reference import paper_decoder, reference_path
from hypothesis import HealthCheck, settings
from torch import nn

from ganinvert import nets, to_chain
from ganinvert.budget import Budget

REFERENCE = reference_path()

# torch's intra-op threads, pinned: by default torch starts one per core, and on a machine whose
# cores are busy (CI runners, a benchmark beside the suite) they wait on each other
torch.set_num_threads(int(os.environ.get("GANINVERT_TEST_THREADS", "1")))

# Hypothesis profiles (HYPOTHESIS_PROFILE=...): ``ci``, the default, draws few generators per
# property and derandomizes, so the default suite stays within its time and never flakes;
# ``thorough`` (make test-all) draws thousands.
# An example builds and inverts a generator: seconds, not the 200 ms hypothesis expects.
_SLOW = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                     HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=12, derandomize=True, **_SLOW)
settings.register_profile("dev", max_examples=100, **_SLOW)
settings.register_profile("thorough", max_examples=2000, **_SLOW)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class StopsAfterLayers(Budget):
    """A time limit that expires once the backward pass has started ``layers + 1`` layers: it
    stops the pass after ``layers`` of them, wherever the clock would."""

    def __init__(self, layers: int) -> None:
        super().__init__(progress=False)
        self.allowed, self.started = layers, 0

    def stage(self, name: str) -> None:
        super().stage(name)
        self.started += name.startswith("backward pass")

    @property
    def expired(self) -> bool:
        return self.started > self.allowed


def random_mlp(dims, *, act="relu", out_act=None, bias=True, seed=0, dtype=torch.float64):
    return nets.random_mlp(dims, act=act, out_act=out_act, bias=bias, seed=seed, dtype=dtype)


def latents(n, k, *, seed=1, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def pattern_setup(dims=(6, 40, 30, 200), n=12, seed=0):
    """A random ReLU chain whose middle layer contracts (the activation-pattern LP's test bed),
    ``n`` latents and their flat images: ``(chain, z, x)``."""
    chain = to_chain(random_mlp(list(dims), seed=seed))
    z = latents(n, dims[0], seed=seed + 1)
    with torch.no_grad():
        x = chain(z).flatten(1)
    return chain, z, x


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
    return paper_decoder(REFERENCE)
