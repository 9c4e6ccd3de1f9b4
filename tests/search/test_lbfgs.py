"""The row-wise L-BFGS: each row its own problem, minimised to its known answer."""

import pytest
import torch

from ganinvert.search.lbfgs import lbfgs_rows


def _rosenbrock(z: torch.Tensor, rows=None) -> torch.Tensor:  # (rows, 2) -> (rows,), minimum 0 at (1, 1)
    return (1 - z[:, 0]) ** 2 + 100 * (z[:, 1] - z[:, 0] ** 2) ** 2


def test_each_row_reaches_the_rosenbrock_minimum():
    z0 = torch.tensor([[-1.2, 1.0], [0.0, 0.0], [2.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    z, f = lbfgs_rows(_rosenbrock, z0, iters=200)
    torch.testing.assert_close(z, torch.ones_like(z), rtol=0, atol=1e-6)
    assert (f < 1e-12).all() and (f <= _rosenbrock(z0)).all()


def test_a_row_does_not_depend_on_the_rows_beside_it():
    # row-dependent scales make the rows' line searches and curvature differ: one shared problem
    # (torch.optim.LBFGS on the batch) would couple them
    scales = torch.tensor([1.0, 1e3, 1e-2], dtype=torch.float64)

    def loss(z, rows, scales=scales):
        return (scales[rows, None] * (z - 3.0) ** 2).sum(1) + (z ** 4).sum(1)

    z0 = torch.tensor([[0.5, -2.0], [4.0, 1.0], [-3.0, 0.2]], dtype=torch.float64)
    together, _ = lbfgs_rows(loss, z0, iters=5)  # mid-way (near the optimum only rounding is left)
    alone, _ = lbfgs_rows(loss, z0[:1], iters=5)
    assert torch.equal(together[:1], alone) and (together[0] - z0[0]).abs().max() > 0.1


def test_a_row_that_cannot_descend_keeps_its_start():
    z0 = torch.zeros(2, 3, dtype=torch.float64)
    z, f = lbfgs_rows(lambda z, rows: (z ** 2).sum(1), z0, iters=10)  # already at the minimum
    assert torch.equal(z, z0) and (f == 0).all()


def test_a_history_of_no_pairs_is_refused():
    with pytest.raises(ValueError, match="history >= 1"):
        lbfgs_rows(_rosenbrock, torch.zeros(1, 2, dtype=torch.float64), iters=3, history=0)


def test_a_relu_output_is_fitted_on_its_pre_activation_where_the_pixel_loss_is_flat():
    # y = ReLU(W z), no bias, from z = 0: every pre-activation sits at ReLU's kink, where torch's
    # gradient is 0, so the pixel loss never moves; the pre-activation misfit does, and fit_pixels
    # reaches x (a convex piecewise quadratic in z for one layer)
    import ganinvert as gi
    from ganinvert.search.fit import fit_pixels
    g = torch.Generator().manual_seed(3)
    W = torch.randn(40, 5, generator=g, dtype=torch.float64)
    G = torch.nn.Sequential(torch.nn.Linear(5, 40, bias=False), torch.nn.ReLU()).double()
    with torch.no_grad():
        G[0].weight.copy_(W)
    chain = gi.to_chain(G, latent_shape=(5,))
    z = torch.randn(3, 5, generator=g, dtype=torch.float64)
    x = chain.output(z).detach()
    zero = torch.zeros_like(z)
    pixel, _ = lbfgs_rows(lambda u, rows: ((chain.output(u) - x[rows]) ** 2).sum(1), zero, iters=200)
    assert (chain.relative_residual(pixel, x) > 0.99).all()  # stuck where it started
    fit = fit_pixels(chain, x, zero[None], iters=200)
    assert (fit.residual < 1e-8).all() and (fit.start == 0).all()


def test_ftol_stops_a_row_on_a_plateau_and_leaves_a_descending_one_going():
    slow = lambda z, rows=None: (z ** 2).sum(1) + 1.0  # minimum 1: reached at once, then a plateau
    z0 = torch.tensor([[3.0, -2.0]], dtype=torch.float64)
    calls = []

    def counted(z, rows):
        calls.append(z.shape[0])
        return slow(z, rows)
    z, f = lbfgs_rows(counted, z0, iters=500, ftol=1e-3)
    assert f.item() == pytest.approx(1.0) and len(calls) < 100  # stopped, not 500 iterations of line search


def test_the_hook_stops_the_rows_it_finished_and_restarts_the_rows_it_moved():
    # Rosenbrock takes more than one look (25 iterations) from (-1.2, 1): at the first look row 0 is
    # "solved another way" (put on its minimum and stopped), row 1 is moved far away and must descend
    # from there, with a fresh history, to the minimum
    looks = []

    def hook(z, active):
        looks.append(active.clone())
        if len(looks) == 1:
            z[0] = torch.ones(2, dtype=z.dtype)
            z[1] = torch.tensor([-2.0, 3.0], dtype=z.dtype)
        return torch.tensor([True, False]), torch.tensor([False, len(looks) == 1])

    z0 = torch.tensor([[-1.2, 1.0], [-1.2, 1.0]], dtype=torch.float64)
    z, f = lbfgs_rows(_rosenbrock, z0, iters=300, every=hook)
    assert looks and looks[0].all()
    assert torch.equal(z[0], torch.ones(2, dtype=torch.float64))  # stopped where the hook put it
    torch.testing.assert_close(z[1], torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-6)
    assert f[1] < 1e-12 and not any(look[0] for look in looks[1:])


def test_fit_pixels_passes_its_starts_rows_to_the_hook():
    import ganinvert as gi
    from ganinvert.search.fit import fit_pixels
    from ganinvert.nets import random_mlp  # seeded: the test must not depend on the global RNG
    chain = gi.to_chain(random_mlp([3, 30, 30], out_act="tanh", seed=0), latent_shape=(3,))
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = chain.output(z).detach()
    seen = []

    def hook(zz, active):  # solve sample 1 (start 1) exactly at the first look
        seen.append(zz.shape[0])
        zz[3] = z[1]
        return torch.tensor([False, False, False, True]), torch.zeros(4, dtype=torch.bool)

    starts = torch.full((2, 2, 3), 30.0, dtype=torch.float64)  # deep in Tanh's tails: a slow fit
    fit = fit_pixels(chain, x, starts, iters=30, every=hook)
    assert seen[0] == 4 and torch.equal(fit.z[1], z[1]) and fit.start[1] == 1
