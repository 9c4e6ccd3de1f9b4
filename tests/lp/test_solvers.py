"""The batched interior point against HiGHS on the same layer problems."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ganinvert.activations import LeakyReLU, ReLU, Tanh
from ganinvert.lp import LayerProblem
from ganinvert.lp.highs import solve_highs
from ganinvert.lp.ipm import solve_ipm
from ganinvert.lp.layer import make_problem


def _problem(n, k, B, *, u_range, act=ReLU(), noise=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, k, generator=g, dtype=torch.float64) / math.sqrt(n)
    b = 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    u = torch.randn(B, k, generator=g, dtype=torch.float64)
    if u_range[0] == 0:
        u = u.relu()
    y = act.forward(u @ A.T + b)
    if noise:
        y = (y + noise * torch.rand(B, n, generator=g, dtype=torch.float64)).clamp(-0.999, None)
    return make_problem(A, b, act, y, u_range=u_range, tol=torch.zeros(B, dtype=torch.float64)), u


CASES = {
    "free-realizable": dict(n=100, k=20, B=16, u_range=(-math.inf, math.inf)),
    "nonneg-realizable": dict(n=150, k=50, B=16, u_range=(0.0, math.inf)),
    "nonneg-underdetermined": dict(n=60, k=40, B=16, u_range=(0.0, math.inf)),
    "box-tanh": dict(n=80, k=20, B=8, u_range=(-1.0, 1.0), act=Tanh()),
    "free-noisy": dict(n=120, k=30, B=16, u_range=(-math.inf, math.inf), noise=0.05),
    "nonneg-noisy": dict(n=120, k=30, B=16, u_range=(0.0, math.inf), noise=0.05),
}


@pytest.mark.parametrize("case", list(CASES))
def test_ipm_reaches_the_highs_optimum(case):
    prob, _ = _problem(**CASES[case])
    ipm, ref = solve_ipm(prob), solve_highs(prob)
    assert ipm.ok.all() and ref.ok.all()
    torch.testing.assert_close(ipm.t, ref.t, rtol=0, atol=1e-7)
    # the IPM point is feasible up to its own optimum
    assert (prob.violation(ipm.u) <= ipm.t + 1e-7).all()
    if "noisy" in case:
        assert (ref.t > 1e-3).all()  # the noisy cases really have no pre-image


def test_ipm_recovers_the_unique_point_of_a_realizable_layer():
    prob, u_true = _problem(n=200, k=30, B=32, u_range=(0.0, math.inf))
    sol = solve_ipm(prob)
    assert sol.ok.all()
    assert (sol.u - u_true).abs().max() < 1e-6


def test_ipm_reports_non_convergence_instead_of_a_wrong_success():
    prob, _ = _problem(n=100, k=20, B=4, u_range=(0.0, math.inf), noise=0.05)
    sol = solve_ipm(prob, max_iter=2)
    assert not sol.ok.any()
    assert all("did not converge" in m for m in sol.messages)


def test_highs_and_ipm_agree_on_an_empty_constraint_set():
    # an all-open problem: every row unbounded, optimum t = 0 anywhere
    A = torch.eye(3, dtype=torch.float64)
    inf = torch.full((2, 3), math.inf, dtype=torch.float64)
    prob = LayerProblem(A, torch.zeros(3, dtype=torch.float64), -inf, inf, torch.ones(2, 3, dtype=torch.float64))
    assert solve_ipm(prob).t.abs().max() < 1e-8
    assert solve_highs(prob).t.abs().max() == 0


@given(n=st.integers(1, 60), k=st.integers(1, 30), B=st.integers(1, 6),
       u_range=st.sampled_from([(-math.inf, math.inf), (0.0, math.inf), (-1.0, 1.0)]),
       act=st.sampled_from([ReLU(), LeakyReLU(0.1), Tanh()]),
       noise=st.sampled_from([0.0, 1e-6, 1e-2, 0.3]), seed=st.integers(0, 2**31 - 1))
def test_ipm_matches_highs_on_random_layer_lps(n, k, B, u_range, act, noise, seed):
    """Over- and under-determined, free, nonnegative and boxed inputs, realizable and not: the
    batched interior point reaches HiGHS's optimum t* on every sample and its point attains it."""
    prob, _ = _problem(n, k, B, u_range=u_range, act=act, noise=noise, seed=seed)
    ipm, ref = solve_ipm(prob), solve_highs(prob)
    assert ref.ok.all(), ref.messages
    assert ipm.ok.all(), ipm.messages
    torch.testing.assert_close(ipm.t, ref.t, rtol=1e-6, atol=1e-7)
    assert (prob.violation(ipm.u) <= ipm.t + 1e-7 * (1 + ipm.t)).all()
