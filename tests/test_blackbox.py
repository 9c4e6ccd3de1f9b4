"""Generators the adapters cannot convert (a SiLU, PixelNorm's pow) are
still inverted by the searches that need only gradients: ``method="adam"``/``"gd"`` and the
default ``auto`` (Adam restarts + L-BFGS), never certified, each answer's message naming the
operation that kept it from a certificate; ``inspect`` says the same before any solve."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ganinvert as gi
from ganinvert.blackbox import black_box

from .conftest import latents


class UpsampleDCGAN(nn.Module):
    """The DCGAN of the popular collections, small: Linear -> view -> BatchNorm2d ->
    Upsample(2) -> Conv2d 3x3 -> BatchNorm2d -> LeakyReLU(0.2) -> Conv2d -> Tanh; with ``act``
    another activation (a SiLU: not convertible)."""

    def __init__(self, nz: int = 12, seed: int = 0, act: nn.Module | None = None) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.nz = nz
        self.l1 = nn.Linear(nz, 16 * 4 * 4)
        self.blocks = nn.Sequential(nn.BatchNorm2d(16), nn.Upsample(scale_factor=2), nn.Conv2d(16, 8, 3, padding=1),
                                    nn.BatchNorm2d(8, 0.8), act or nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 3, padding=1),
                                    nn.Tanh())
        self.train()
        with torch.no_grad():  # BatchNorm statistics from a train-mode pass, as a trained net has
            self(torch.randn(64, nz))
        self.eval()

    def forward(self, z):
        return self.blocks(self.l1(z).view(z.shape[0], 16, 4, 4))


class SiLUArgs(nn.Module):
    """An MLP with SiLU hidden activations whose forward takes ``(z, *args)`` (SNGAN style): the
    SiLU makes it a black box."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Sequential(nn.Linear(6, 40), nn.SiLU(), nn.Linear(40, 80), nn.Tanh())

    def forward(self, z, *args):
        return self.net(z)


@pytest.fixture(scope="module")
def dcgan():
    G = UpsampleDCGAN(act=nn.SiLU()).double()
    z = latents(6, 12, seed=3)
    with torch.no_grad():
        return G, z, G(z)


def test_the_default_inverts_an_upsampling_dcgan_without_a_certificate_and_says_why(dcgan):
    G, z, x = dcgan
    r = gi.invert(G, x)
    assert not r.exact.any() and r.solved.sum() >= 5  # Adam + L-BFGS reach G(z) = x, never EXACT
    assert all(m.startswith("not certifiable: module 'blocks.4' of type SiLU is not supported") for m in r.messages)
    assert r.method == "adam" and (r.residual[r.solved] <= 1e-6).all()
    assert r.z.shape == z.shape and r.x_hat.shape == x.shape


@pytest.mark.parametrize("method", ["adam", "gd", "hybrid"])
def test_every_search_that_needs_only_gradients_runs_on_it(dcgan, method):
    G, z, x = dcgan
    r = gi.invert(G, x, method=method, time_limit=20)
    assert not r.exact.any() and torch.isfinite(r.residual).all()
    assert (r.residual < 1).all()  # a fit, not the zero latent's image


@pytest.mark.parametrize("method", ["layerwise", "noisy"])
def test_the_exact_methods_refuse_it_and_point_to_the_ones_that_run(dcgan, method):
    G, _, x = dcgan
    with pytest.raises(gi.UnsupportedLayerError, match=r"Expected: a generator whose every operation converts.*Got: module 'blocks.4' of type SiLU "
                       r"is not supported.*Fix: method='adam', 'gd' or the default"):
        gi.invert(G, x, method=method)


def test_gradients_through_the_answer_need_the_chain(dcgan):
    G, _, x = dcgan
    with pytest.raises(gi.UnsupportedLayerError, match="differentiable=True differentiates the layers"):
        gi.invert(G, x, differentiable=True)


def test_inspect_says_before_any_solve_that_nothing_will_be_certified(dcgan):
    G, _, _ = dcgan
    rep = gi.inspect(G)
    assert rep.in_shape == (12,) and rep.out_shape == (1, 8, 8) and not rep.exact_alone
    assert "not certifiable, module 'blocks.4' of type SiLU is not supported" in str(rep)
    assert "no answer is ever EXACT" in str(rep)


def test_masks_and_measurements_work_on_a_black_box(dcgan):
    G, z, x = dcgan
    seen = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0)) < 0.7
    r = gi.invert(G, x, mask=seen, method=gi.Adam(restarts=4, polish=200))
    assert r.solved.sum() >= 5 and not r.exact.any()
    M = torch.randn(48, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = x.reshape(6, -1) @ M.T
    r = gi.invert(G, y, measurement=M, method=gi.Adam(restarts=4, polish=200))
    assert r.x_hat.shape == x.shape and r.solved.sum() >= 5
    torch.testing.assert_close(r.x_hat.reshape(6, -1)[r.solved] @ M.T, y[r.solved], rtol=1e-5, atol=1e-5)


def test_a_silu_mlp_with_a_star_args_forward_is_inverted_in_its_own_dtype():
    G = SiLUArgs().eval()  # float32, SiLU (unsupported), forward(self, z, *args)
    z = latents(5, 6, seed=4, dtype=torch.float32)
    x = G(z).detach()
    r = gi.invert(G, x, method="adam")
    assert r.z.dtype == torch.float32 and r.solved.sum() >= 4  # rtol 1e-4 in float32
    assert all(m.startswith("not certifiable: module 'net.1' of type SiLU is not supported. Supported: ")
               and m.endswith("to add one; inverted by adam on gradients alone")
               for m, ok in zip(r.messages, r.solved.tolist()) if ok)


def test_a_forward_with_star_args_is_called_with_z_alone_and_converts():
    # SNGAN's generators take forward(self, z, *args): the extra arguments are empty, the rest a chain
    class Args(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(2)
            self.net = nn.Sequential(nn.Linear(5, 30), nn.ReLU(), nn.Linear(30, 90), nn.ReLU())

        def forward(self, z, *args, **kwargs):
            return self.net(z)

    G = Args().double().eval()
    z = latents(4, 5, seed=6)
    x = G(z).detach()
    r = gi.invert(G, x)
    assert r.exact.all() and (r.z - z).abs().max() < 1e-9  # exact: the chain, not a black box


def test_the_latent_shape_is_inferred_or_asked_for():
    box = black_box(SiLUArgs().eval(), why="test")
    assert box.in_shape == (6,) and box.image_shape == (80,) and not box.certifiable

    class NoLayers(nn.Module):
        def forward(self, z):
            return torch.sin(z)

    with pytest.raises(gi.ShapeMismatchError, match=r"Expected: a latent shape.*latent_shape="):
        black_box(NoLayers(), why="test")
    assert black_box(NoLayers(), why="test", latent_shape=(7,)).image_shape == (7,)


def test_an_upsampling_dcgan_is_a_chain_and_auto_finds_the_true_latent():
    # nn.Upsample is a fixed linear map (ganinvert.operators.LinearFunction); the last layer contracts
    # past the LP's limit, so the layer-wise pass stops at once and Levenberg-Marquardt solves it
    G = UpsampleDCGAN().double()
    assert gi.inspect(G).not_converted == ""
    z = latents(4, 12, seed=5)
    with torch.no_grad():
        x = G(z)
    r = gi.invert(G, x)
    assert r.solved.all() and not r.exact.any() and ((r.z - z).norm(dim=1) / z.norm(dim=1)).max() < 1e-6


class PixelNorm(nn.Module):
    def forward(self, x):
        return x / torch.sqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


@pytest.mark.parametrize("norm, named", [
    (nn.GELU(), "GELU"), (nn.LayerNorm([4, 4, 4]), "LayerNorm"), (nn.InstanceNorm2d(4, affine=True), "InstanceNorm2d"),
    (nn.GroupNorm(2, 4), "GroupNorm"), (PixelNorm(), "pow"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_every_module_people_write_is_accepted_by_the_default_and_by_adam(norm, named):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(5, 64), nn.Unflatten(1, (4, 4, 4)), norm, nn.Upsample(scale_factor=2),
                      nn.Conv2d(4, 1, 3, padding=1), nn.Tanh()).double().eval()
    x = G(latents(2, 5, seed=1)).detach()
    assert named in gi.inspect(G).not_converted
    for method in ("auto", "adam"):
        r = gi.invert(G, x, method=method, time_limit=10)
        assert not r.exact.any() and all(m.startswith("not certifiable") and named in m for m in r.messages)
        assert float(r.residual.max()) < 0.5  # a real search ran: far closer than z = 0
