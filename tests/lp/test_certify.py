"""Fast-path certification and the uniqueness test on layers with known answers."""

import math

import pytest
import torch

from ganinvert.activations import ReLU
from ganinvert.lp import invert_layer
from ganinvert.lp.certify import polish_and_certify
from ganinvert.lp.fastpath import lstsq_fast_path
from ganinvert.lp.ipm import solve_ipm
from ganinvert.lp.layer import make_problem

F64 = torch.float64


def _relu_problem(A, y, u_lo=-math.inf):
    A, y = torch.as_tensor(A, dtype=F64), torch.as_tensor(y, dtype=F64)
    return make_problem(A, torch.zeros(A.shape[0], dtype=F64), ReLU(), y, u_range=(u_lo, math.inf),
                        tol=torch.zeros(y.shape[0], dtype=F64))


def test_two_opposite_zero_rows_pin_a_point_without_any_equality():
    # u <= 0 and -u <= 0: no pinned row, yet the pre-image is {0} (Stiemke's case)
    prob = _relu_problem([[1.0], [-1.0]], [[0.0, 0.0]])
    u, unique = polish_and_certify(prob, torch.tensor([[1e-12]], dtype=F64), tol=torch.tensor([1e-9], dtype=F64))
    assert unique.tolist() == [True]
    assert u.abs().max() < 1e-12


def test_one_sided_rows_in_the_same_direction_leave_a_ray():
    prob = _relu_problem([[1.0], [2.0]], [[0.0, 0.0]])  # u <= 0: a half-line
    _, unique = polish_and_certify(prob, torch.tensor([[0.0]], dtype=F64), tol=torch.tensor([1e-9], dtype=F64))
    assert unique.tolist() == [False]


def test_nonnegativity_can_complete_a_certificate():
    # pinned: u1 + u2 = 0 has a line of solutions; u >= 0 cuts it to the point (0, 0)
    A = [[1.0, 1.0], [1.0, 1.0]]
    prob_free = _relu_problem(A, [[0.0, 0.0]])
    prob_pos = _relu_problem(A, [[0.0, 0.0]], u_lo=0.0)
    tol = torch.tensor([1e-9], dtype=F64)
    assert polish_and_certify(prob_free, torch.zeros(1, 2, dtype=F64), tol=tol)[1].tolist() == [False]
    assert polish_and_certify(prob_pos, torch.zeros(1, 2, dtype=F64), tol=tol)[1].tolist() == [True]


def test_fast_path_refuses_rank_deficient_pinned_rows():
    # all 8 rows positive (bias 5), but two columns equal up to 1e-9: Cholesky still succeeds
    # and the equality residual is ~0 along a whole line of u, so without the rank check
    # least squares would "certify" whatever point of that line it lands on
    g = torch.Generator().manual_seed(0)
    A = torch.randn(8, 3, generator=g, dtype=F64)
    A[:, 2] = A[:, 1] + 1e-9 * torch.randn(8, generator=g, dtype=F64)
    b = torch.full((8,), 5.0, dtype=F64)
    u = torch.tensor([[1.0, 0.5, 0.5]], dtype=F64)
    y = torch.relu(u @ A.T + b)
    assert (y > 0).all()
    prob = make_problem(A, b, ReLU(), y, u_range=(-math.inf, math.inf), tol=torch.zeros(1, dtype=F64))
    fp = lstsq_fast_path(prob, tol=torch.tensor([1e-7], dtype=F64))
    assert fp.certified.tolist() == [False]
    assert fp.sigma_min.item() < 1e-7
    sol = invert_layer(A, b, ReLU(), y, u_range=(-math.inf, math.inf), rtol=1e-8)
    assert sol.unique.tolist() == [False]  # and the LP path does not claim it either
    assert sol.residual.item() < 1e-6  # but it does find a pre-image


def test_fast_path_certifies_an_overdetermined_consistent_layer():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(300, 20, generator=g, dtype=F64) / math.sqrt(300)
    u = torch.randn(8, 20, generator=g, dtype=F64)
    y = torch.relu(u @ A.T)
    prob = make_problem(A, torch.zeros(300, dtype=F64), ReLU(), y, u_range=(-math.inf, math.inf),
                        tol=torch.zeros(8, dtype=F64))
    fp = lstsq_fast_path(prob, tol=torch.full((8,), 1e-9, dtype=F64))
    assert fp.certified.all()
    assert (fp.u - u).abs().max() < 1e-10
    assert (fp.sigma_min > 0).all()


def test_hidden_layer_needs_the_lp_and_gets_the_true_point():
    # n/k = 2 with u >= 0: least squares alone has too few positive rows for many samples
    g = torch.Generator().manual_seed(2)
    n, k, B = 100, 50, 64
    A = torch.randn(n, k, generator=g, dtype=F64) / math.sqrt(n)
    b = torch.zeros(n, dtype=F64)
    u = torch.randn(B, k, generator=g, dtype=F64).relu()
    y = torch.relu(u @ A.T)
    sol = invert_layer(A, b, ReLU(), y, u_range=(0.0, math.inf), rtol=1e-9)
    lp = torch.tensor([m != "lstsq" for m in sol.methods])
    assert lp.sum() > B // 4  # the LP was needed for a good share of samples...
    err = (sol.u - u).abs().amax(1)
    assert (err[sol.unique] < 1e-8).all()  # ...and every certified sample is the true u*
    assert sol.unique.float().mean() > 0.9


def test_a_verified_point_stands_even_when_the_ipm_stops_early():
    # capped at 9 iterations (per solve: the LP with its sparse cost, then the plain LP from its
    # answer where that missed the pre-image) the IPM's own stopping test does not always fire;
    # polishing + the a-posteriori certificate still recover u* for part of the samples
    g = torch.Generator().manual_seed(2)
    n, k, B = 100, 50, 64
    A = torch.randn(n, k, generator=g, dtype=F64) / math.sqrt(n)
    u = torch.randn(B, k, generator=g, dtype=F64).relu()
    y = torch.relu(u @ A.T)
    sol = invert_layer(A, torch.zeros(n, dtype=F64), ReLU(), y, u_range=(0.0, math.inf), rtol=1e-9,
                       solver_options={"max_iter": 9})
    lp = torch.tensor([m != "lstsq" for m in sol.methods])
    assert (lp & sol.solver_ok).any() and (lp & ~sol.solver_ok).any()
    assert ((sol.u - u).abs().amax(1)[sol.unique] < 1e-8).all()
    assert all(("did not converge" in m) != bool(ok) for m, ok in zip(sol.messages, sol.solver_ok.tolist()))
    assert (sol.residual[sol.solver_ok] <= 1e-9 * y.abs().amax(1)[sol.solver_ok]).all()


def test_batched_certificates_mix_every_case_and_match_each_sample_alone():
    # rows u1 <= / >= ..., one batch: a ray (u2 free below 0), Stiemke on u1 with u2 pinned, all pinned
    A = [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]
    y = [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [2.0, 0.0, 1.0]]
    u = torch.tensor([[0.0, -3.0], [1e-12, 1.0], [2.0, 1.0]], dtype=F64)
    prob = _relu_problem(A, y)
    tol = torch.full((3,), 1e-9, dtype=F64)
    u_b, unique = polish_and_certify(prob, u, tol=tol)
    assert unique.tolist() == [False, True, True]
    assert torch.allclose(u_b[1:], torch.tensor([[0.0, 1.0], [2.0, 1.0]], dtype=F64), atol=1e-12)
    for i in range(3):  # a sample's certificate does not depend on its batch
        u_i, unique_i = polish_and_certify(_relu_problem(A, [y[i]]), u[i:i + 1], tol=tol[i:i + 1])
        assert unique_i.item() == unique[i].item() and torch.equal(u_i[0], u_b[i])


@pytest.mark.parametrize("seed", range(6))
def test_least_squares_bound_never_exceeds_the_lp_optimum_and_proves_only_empty_pre_images(seed):
    # random layers (expanding, some with u >= 0), observations pushed off the range by noise of
    # several sizes: the pinned rows' rms misfit is a lower bound on the LP's t*, so whenever it
    # proves "no pre-image" the LP agrees
    g = torch.Generator().manual_seed(seed)
    n, k = [(60, 10), (120, 30), (200, 20), (90, 40), (300, 60), (50, 12)][seed]
    A = torch.randn(n, k, generator=g, dtype=F64) / math.sqrt(k)
    b = 0.1 * torch.randn(n, generator=g, dtype=F64)
    u_lo = 0.0 if seed % 2 else -math.inf
    u = torch.randn(12, k, generator=g, dtype=F64).abs()
    noise = torch.logspace(-12, 0, 12, dtype=F64)[:, None] * torch.randn(12, n, generator=g, dtype=F64)
    y = torch.relu(torch.relu(u @ A.T + b) + noise)
    tol = 1e-7 * y.abs().amax(1)
    prob = make_problem(A, b, ReLU(), y, u_range=(u_lo, math.inf), tol=tol)
    fp = lstsq_fast_path(prob, tol=tol)
    t_star = solve_ipm(prob).t
    assert (fp.misfit_bound <= t_star * (1 + 1e-6) + 1e-12).all()
    assert (t_star[fp.infeasible] > tol[fp.infeasible]).all()
    assert fp.infeasible[-4:].all() and not fp.infeasible[:2].any()  # heavy noise proven, none wrongly
    sol = invert_layer(A, b, ReLU(), y, u_range=(u_lo, math.inf), rtol=1e-7)
    proven = fp.infeasible.nonzero().flatten().tolist()
    assert all(sol.methods[i] == "lstsq" and "no pre-image" in sol.messages[i] for i in proven)  # no LP spent
    assert torch.equal(sol.optimum[proven], fp.misfit_bound[proven])


@pytest.mark.parametrize("seed", range(8))
def test_certifying_at_a_known_input_agrees_with_the_lp_route(seed):
    # the uniqueness check along a known G(z) tests the known input itself (certify_at); the layer
    # LP first finds a point and tests that one: on random layers, expanding and square, with
    # outputs from sparse to dense, the two verdicts are the same per sample
    from ganinvert.lp.layer import certify_at
    g = torch.Generator().manual_seed(seed)
    n, k = [(60, 20), (30, 30), (40, 30), (25, 10)][seed % 4]
    A = torch.randn(n, k, generator=g, dtype=F64)
    b = torch.randn(n, generator=g, dtype=F64) - (1.5 if seed % 2 else 0.0)  # sparse outputs on odd seeds
    u = torch.relu(torch.randn(6, k, generator=g, dtype=F64))  # a ReLU layer's output: u >= 0, zeros tight
    y = torch.relu(u @ A.T + b)
    mine = certify_at(A, b, ReLU(), y, u, u_range=(0.0, math.inf), rtol=1e-9)
    lp = invert_layer(A, b, ReLU(), y, u_range=(0.0, math.inf), rtol=1e-9)
    assert torch.equal(mine, lp.unique & lp.solver_ok)
    assert not certify_at(A, b, ReLU(), y, u + 0.1, u_range=(0.0, math.inf), rtol=1e-9).any()  # not a pre-image
