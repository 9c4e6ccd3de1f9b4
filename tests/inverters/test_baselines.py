"""Latent-optimisation baselines, the encoder inverter and the hybrid."""

import pytest
import torch
from torch import nn

import ganinvert as gi
from ganinvert import Status

from ..conftest import latents, random_mlp, rel_err


def test_gd_with_negation_check_recovers_z_on_an_expansive_relu_net():
    # Huang et al.'s setting: Gaussian, bias-free, expansive ReLU layers
    G = random_mlp((5, 100, 400), bias=False, seed=3)
    z = latents(16, 5)
    r = gi.invert(G, G(z).detach(), method=gi.GradientDescent(steps=1500, lr=0.05, seed=1))
    assert (rel_err(r.z, z) < 1e-3).float().mean() >= 0.9
    assert Status.EXACT not in r.status and r.method == "gd"


def test_latent_box_with_stochastic_clipping_keeps_every_coordinate_inside():
    G = random_mlp((5, 30, 90), seed=1)
    x = G(latents(8, 5)).detach()
    r = gi.invert(G, x, method=gi.Adam(steps=200, lr=0.2, box=0.5, seed=0))
    assert r.z.abs().max() <= 0.5


def test_chunked_restarts_keep_every_sample():
    G = random_mlp((5, 30, 90), seed=2)
    z = latents(10, 5)
    r = gi.invert(G, G(z).detach(), method=gi.Adam(steps=300, restarts=3, max_rows=7, seed=0))
    assert r.z.shape == (10, 5) and torch.isfinite(r.z).all()
    assert r.solved.float().mean() >= 0.8  # every chunk was optimised, the tail included


def test_warm_start_and_penalty_options_are_validated():
    with pytest.raises(gi.InvalidInputError, match="z_penalty >= 0"):
        gi.Adam(z_penalty=-1.0)
    with pytest.raises(gi.InvalidInputError, match="box > 0"):
        gi.Adam(box=0.0)


def test_encoder_inverter_is_exact_with_a_pseudo_inverse_encoder():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(40, 6, generator=g, dtype=torch.float64)
    G = nn.Sequential(nn.Linear(6, 40, bias=False)).double().eval()
    G[0].weight.data.copy_(W)
    enc = nn.Linear(40, 6, bias=False).double()
    enc.weight.data.copy_(torch.linalg.pinv(W))
    z = latents(5, 6)
    r = gi.invert(G, G(z).detach(), method=gi.Encoder(encoder=enc))
    assert r.status == [Status.EXACT_NONUNIQUE] * 5  # right answer, but an encoder certifies nothing
    assert rel_err(r.z, z).max() < 1e-10


def test_encoder_must_match_the_latent_size():
    G = random_mlp((6, 20, 40))
    with pytest.raises(gi.InvalidInputError, match="Expected: 6"):
        gi.invert(G, G(latents(2, 6)).detach(), method=gi.Encoder(encoder=nn.Linear(40, 5).double()))


def test_hybrid_keeps_certified_samples_and_only_improves_the_rest(reference_decoder):
    z = torch.randn(60, 20, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x = reference_decoder(z).detach()
    lw = gi.invert(reference_decoder, x, method="layerwise")
    hy = gi.invert(reference_decoder, x, method=gi.Hybrid(adam=gi.Adam(steps=300, lr=0.01)))
    exact = lw.exact
    assert exact.any() and (~lw.solved).any()
    assert torch.equal(hy.exact, exact) and torch.equal(hy.z[exact], lw.z[exact])
    assert (hy.residual <= lw.residual + 1e-15).all()
    assert any(m.endswith(">adam") for m in hy.methods)
    assert (hy.residual[~exact] < lw.residual[~exact]).any()
