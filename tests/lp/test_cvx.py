"""Every LP family exported to cvxpy solves to the batched IPM's optimum; the cvxpylayers solver
inverts exactly; its layer is built once per shape."""

from __future__ import annotations

import math

import pytest
import torch

cp = pytest.importorskip("cvxpy")
pytest.importorskip("cvxpylayers")

import ganinvert as gi  # noqa: E402
from ganinvert.activations import LeakyReLU, ReLU  # noqa: E402
from ganinvert.lp import cvx, to_cvxpy  # noqa: E402
from ganinvert.lp.ipm import solve_ipm  # noqa: E402
from ganinvert.lp.layer import make_problem  # noqa: E402
from ganinvert.lp.noisy import relax_problem, threshold_problem  # noqa: E402
from ganinvert.lp.pattern import pattern_problem  # noqa: E402
from tests.conftest import latents, random_mlp  # noqa: E402


def _layer_data(n=40, k=8, B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, k, generator=g, dtype=torch.float64)
    b = 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    u = torch.randn(B, k, generator=g, dtype=torch.float64).clamp(min=0)
    return A, b, u, g


def _one_layer(A: torch.Tensor, b: torch.Tensor) -> torch.nn.Module:
    """``relu(A u + b)`` as a module."""
    lin = torch.nn.Linear(A.shape[1], A.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(A), lin.bias.copy_(b)
    return torch.nn.Sequential(lin, torch.nn.ReLU())


def _families():
    """One batch of each LP family the toolkit builds, named."""
    A, b, u, g = _layer_data()
    y = torch.relu(u @ A.T + b)
    noisy = y + 0.01 * torch.randn(y.shape, generator=g, dtype=torch.float64)
    tau = torch.full((y.shape[0], 1), 0.02, dtype=torch.float64)
    yield "layer", make_problem(A, b, ReLU(), y, u_range=(0.0, math.inf), tol=torch.full((3,), 1e-9,
                                                                                           dtype=torch.float64))
    yield "threshold l_inf", threshold_problem(ReLU(), A, b, noisy, tau, (0.0, math.inf))
    yield "threshold l_inf leaky", threshold_problem(LeakyReLU(0.2), A, b, u @ A.T + b + 0.01, tau,
                                                     (-math.inf, math.inf))
    yield "relax l_1", relax_problem(ReLU(), A, b, noisy, tau, (0.0, math.inf))
    chain = gi.to_chain(random_mlp((6, 30, 80), seed=3))
    z = latents(3, 6, seed=4)
    x = chain.forward_all(z + 0.05)[-1]  # another region's image: a positive optimum
    yield "pattern", pattern_problem(chain, chain.patterns(z), x, tol=torch.full((3,), 1e-9, dtype=torch.float64))


@pytest.mark.parametrize("name,problem", list(_families()), ids=[n for n, _ in _families()])
def test_every_lp_family_round_trips_through_cvxpy_with_the_ipm_optimum(name, problem):
    ipm = solve_ipm(problem, tol=1e-12, max_iter=200)
    assert bool(ipm.ok.all()), name
    cost = torch.zeros_like(ipm.u) if problem.cost is None else problem.cost
    want = ipm.t + (cost * ipm.u).sum(1)
    lps = to_cvxpy(problem)
    assert len(lps) == problem.batch
    for i, lp in enumerate(lps):
        lp.problem.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
        assert lp.problem.status == "optimal"
        assert abs(lp.problem.value - want[i].item()) <= 1e-8 * (1 + abs(want[i].item())), (name, i)
        # the exported u is feasible for the toolkit's own problem at the same misfit
        u = torch.as_tensor(lp.u.value, dtype=torch.float64)[None]
        assert problem.select([i]).violation(u).item() <= lp.t.value + 1e-8


def test_the_layer_lp_exports_with_its_open_sides_dropped():
    A, b, u, _ = _layer_data(n=12, k=3, B=1)
    y = torch.relu(u @ A.T + b)
    prob = make_problem(A, b, ReLU(), y, u_range=(0.0, math.inf), tol=torch.full((1,), 1e-9, dtype=torch.float64))
    lp = to_cvxpy(prob, 0)
    pinned = int((y > 1e-9).sum())
    # every ReLU row is bounded above (by y or 0), only pinned rows below; then u >= 0
    assert [c.size for c in lp.problem.constraints] == [12, pinned, 3]


def test_layerwise_with_the_cvxpylayers_solver_inverts_exactly_like_the_ipm():
    G = random_mlp((5, 20, 60), act="relu", out_act="relu", seed=2)
    z = latents(4, 5, seed=5)
    x = G(z).detach()
    res = gi.invert(G, x, method=gi.Layerwise(solver="cvxpylayers", fast_path=False))
    ref = gi.invert(G, x, method=gi.Layerwise(fast_path=False))
    assert [s.name for s in res.status] == [s.name for s in ref.status] == ["EXACT"] * 4
    assert (res.z - z).abs().max() <= 1e-9
    assert all(m == "cvxpylayers/cvxpylayers" for m in res.methods)


def test_the_cvxpylayer_is_built_once_per_layer_shape_and_reused():
    cvx._layer.cache_clear()
    A, b, u, _ = _layer_data(n=30, k=6, B=2)
    for seed in range(3):  # three batches of the same shape, different data
        y = torch.relu((u + seed) @ A.T + b)
        prob = make_problem(A, b, ReLU(), y, u_range=(0.0, math.inf), tol=torch.full((2,), 1e-9, dtype=torch.float64))
        sol = cvx.solve_cvxpylayers(prob)
        assert (sol.u - (u + seed)).abs().max() <= 1e-8
    info = cvx._layer.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_open_sides_whose_stand_in_would_be_active_are_moved_away():
    # rows 0 and 1 pin u = (500, 500); row 2 (both sides open) then reads 1e5, beyond the first
    # stand-in (10 x the largest bound): it must not cut the solution off
    A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [100.0, 100.0]], dtype=torch.float64)
    lo = torch.tensor([[500.0, 500.0, -math.inf]], dtype=torch.float64)
    hi = torch.tensor([[500.0, 500.0, math.inf]], dtype=torch.float64)
    prob = gi.lp.LayerProblem(A, torch.zeros(3, dtype=torch.float64), lo, hi, torch.ones(1, 3, dtype=torch.float64))
    u, t = cvx.lp_layer(prob)
    assert t.item() <= 1e-7
    assert u[0].tolist() == pytest.approx([500.0, 500.0], abs=1e-6)


def test_the_cvxpylayers_solver_takes_tol_and_max_iter_like_every_solver():
    # Clarabel's own settings: a loose tolerance stops it early (a misfit t well above the default's
    # 1e-12 on exact data), three iterations leave it far from u*; both were once ignored
    A, b, u, _ = _layer_data()
    y = torch.relu(u @ A.T + b)
    prob = make_problem(A, b, ReLU(), y, u_range=(0.0, math.inf), tol=torch.full((3,), 1e-9, dtype=torch.float64))
    default = cvx.solve_cvxpylayers(prob)
    assert (default.t < 1e-9).all() and (default.u - u).abs().max() < 1e-8
    loose = cvx.solve_cvxpylayers(prob, tol=1e-2)
    assert (loose.t > 1e-7).all() and (loose.t < 1e-1).all()
    capped = cvx.solve_cvxpylayers(prob, max_iter=3)
    assert (capped.u - u).abs().max() > 1e-2
    lw = gi.Layerwise(solver="cvxpylayers", fast_path=False, solver_options={"max_iter": 3})
    assert (lw.solve_layer(gi.to_chain(_one_layer(A, b)), 0, A, y, rtol=1e-6).u - u).abs().max() > 1e-2
