import pytest
import torch

import ganinvert as gi
from ganinvert import Status

from ..conftest import latents, random_mlp, rel_err


def test_adam_baseline_never_claims_uniqueness_and_is_seeded():
    G = random_mlp((5, 30, 90), seed=1)
    x = G(latents(8, 5)).detach()
    a = gi.invert(G, x, method=gi.Adam(steps=300, lr=0.05, seed=3))
    b = gi.invert(G, x, method=gi.Adam(steps=300, lr=0.05, seed=3))
    assert Status.EXACT not in a.status
    assert set(a.status) <= {Status.EXACT_NONUNIQUE, Status.APPROXIMATE}
    torch.testing.assert_close(a.z, b.z)  # same seed, same answer; the global RNG is not used


def test_adam_restarts_do_not_increase_the_residual():
    G = random_mlp((5, 30, 90), seed=2)
    x = G(latents(16, 5)).detach()
    one = gi.invert(G, x, method=gi.Adam(steps=100, restarts=1, seed=0))
    three = gi.invert(G, x, method=gi.Adam(steps=100, restarts=3, seed=0))
    assert (three.residual <= one.residual + 1e-12).all()


def test_adam_rejects_bad_options():
    with pytest.raises(gi.InvalidInputError, match="steps >= 1"):
        gi.Adam(steps=0)
    with pytest.raises(gi.InvalidInputError, match="loss 'output' or 'preactivation', Got: 'l1'"):
        gi.Adam(loss="l1")


def test_preactivation_loss_still_pulls_pixels_whose_unit_died():
    # one ReLU layer whose rows all lean on z_1: from z0 = -e_1 every pre-activation is negative,
    # G(z0) = 0 and ||G(z) - x||^2 has no gradient at all; the pre-activation loss (convex
    # here) still reaches z*
    from torch import nn

    g = torch.Generator().manual_seed(5)
    W = 0.1 * torch.randn(40, 4, generator=g, dtype=torch.float64)
    W[:, 0] = W[:, 0].abs() + 1.0
    G = nn.Sequential(nn.Linear(4, 40, bias=False), nn.ReLU()).double()
    with torch.no_grad():
        G[0].weight.copy_(W)
    chain = gi.to_chain(G)
    z = torch.tensor([[1.0, 0.3, -0.2, 0.5]], dtype=torch.float64).repeat(3, 1) + 0.1 * latents(3, 4, seed=6)
    x = G(z).detach()
    z0 = torch.tensor([[-1.0, 0.0, 0.0, 0.0]], dtype=torch.float64).repeat(3, 1)
    assert (chain(z0) == 0).all()
    kw = dict(steps=3000, lr=0.02, restarts=1)
    out = gi.Adam(**kw).solve(chain, x, rtol=1e-6, z0=z0)
    pre = gi.Adam(loss="preactivation", **kw).solve(chain, x, rtol=1e-6, z0=z0)
    torch.testing.assert_close(out.z, z0)  # stuck where it started
    assert (chain.relative_residual(pre.z, x) < 1e-4).all()


def test_endpoints_hold_every_restart_and_solve_keeps_the_best():
    G = random_mlp((5, 30, 90), seed=1)
    chain = gi.to_chain(G)
    x = G(latents(7, 5)).detach()
    adam = gi.Adam(steps=50, lr=0.05, restarts=3, seed=2)
    ends = adam.endpoints(chain, x)
    assert ends.shape == (3, 7, 5)
    res = torch.stack([chain.relative_residual(e, x) for e in ends])  # (3, 7)
    best = adam.solve(chain, x, rtol=1e-6).z
    torch.testing.assert_close(chain.relative_residual(best, x), res.amin(0))


def test_lbfgs_polish_finishes_what_adam_left_and_never_raises_the_loss():
    # 20 Adam steps leave every restart far off; 100 L-BFGS iterations from there reach a
    # smaller loss on every row, and the polished endpoints are at least as good row by row
    G = random_mlp((5, 30, 90), seed=3, out_act="tanh")
    chain = gi.to_chain(G)
    x = G(latents(12, 5, seed=4)).detach()
    kw = dict(steps=20, lr=0.05, restarts=2, seed=1)
    plain, _ = gi.Adam(**kw)._restarts(chain, x, None)
    polished, loss = gi.Adam(polish=100, polish_rows=8, **kw)._restarts(chain, x, None)
    before = torch.stack([((chain(p) - x) ** 2).sum(1) for p in plain])
    after = torch.stack([((chain(p) - x) ** 2).sum(1) for p in polished])
    torch.testing.assert_close(after, loss)
    assert (after <= before).all() and after.median() < 1e-3 * before.median()


def test_polish_options_are_checked():
    with pytest.raises(gi.InvalidInputError, match="polish >= 0 and polish_rows >= 1, Got: polish=-1"):
        gi.Adam(polish=-1)


def test_noise_that_leaves_the_output_range_is_fitted_not_refused():
    # uniform noise takes ReLU pixels below 0: the exact methods call that out of range (INVALID,
    # with the noise= hint), a fit in pixels just fits it
    G = random_mlp((20, 100, 500), seed=0)
    z = latents(4, 20, seed=1)
    x = G(z).detach() + 1e-3 * (2 * torch.rand(4, 500, generator=torch.Generator().manual_seed(2),
                                               dtype=torch.float64) - 1)
    assert (x < 0).any(1).all()
    r = gi.invert(G, x, method=gi.Adam(steps=300, seed=0))
    assert all(s is gi.Status.APPROXIMATE for s in r.status)
    assert (rel_err(r.z, z) < 1e-2).all()  # the noise level, not a refusal
    assert all(s is gi.Status.INVALID for s in gi.invert(G, x, method="layerwise").status)
