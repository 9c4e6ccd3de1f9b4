"""Compressed sensing: invert(..., measurement=M) finds z with M G(z) = y through the
optimisation inverters and the activation-pattern LP (M as a last, linear layer)."""

import pytest
import torch

import ganinvert as gi

from .conftest import latents, random_mlp, rel_err


@pytest.fixture
def sensed():
    G = random_mlp([8, 60, 300], seed=3)
    z = latents(10, 8, seed=4)
    M = torch.randn(60, 300, generator=torch.Generator().manual_seed(5), dtype=torch.float64) / 60 ** 0.5
    with torch.no_grad():
        y = G(z) @ M.T
    return G, z, M, y


def test_sixty_gaussian_measurements_of_a_300_pixel_output_recover_the_latent(sensed):
    G, z, M, y = sensed
    r = gi.invert(G, y, measurement=M)
    assert r.method == "auto" and r.x_hat.shape == (10, 300)  # x_hat is the image G(z)
    assert (r.residual <= 1e-6).float().mean() >= 0.9  # M G(z) = y
    ok = rel_err(r.z, z) <= 1e-6
    assert ok.float().mean() >= 0.9
    torch.testing.assert_close(r.x_hat[ok], G(z).detach()[ok], rtol=0, atol=1e-6)
    assert not r.exact.any()  # 60 < 300 rows: M never pins its input, nothing claims uniqueness


def test_adam_alone_is_the_baseline_and_does_worse(sensed):
    G, z, M, y = sensed
    a = gi.invert(G, y, measurement=M, method=gi.Adam(steps=300, lr=0.05, seed=1))
    r = gi.invert(G, y, measurement=M)
    assert a.method == "adam" and r.residual.median() < 1e-3 * a.residual.median()


def test_bad_measurements_are_typed_errors(sensed):
    G, _, M, y = sensed
    with pytest.raises(gi.ShapeMismatchError, match=r"300 columns .* Got: shape \(60, 299\)"):
        gi.invert(G, y, measurement=M[:, :299])
    with pytest.raises(gi.InvalidInputError, match="2-D float tensor"):
        gi.invert(G, y, measurement=M[0])
    with pytest.raises(gi.InvalidInputError, match="measurement= alone"):
        gi.invert(G, y, measurement=M, mask=torch.ones(300, dtype=torch.bool))
    with pytest.raises(gi.ShapeMismatchError):
        gi.invert(G, y[:, :50], measurement=M)  # y must have one entry per row of M
