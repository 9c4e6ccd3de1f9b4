"""The activation-pattern LP: per-sample operators in the batched IPM (checked against HiGHS)."""

import torch

from ganinvert.lp.highs import solve_highs
from ganinvert.lp.ipm import solve_ipm
from ganinvert.lp.pattern import pattern_problem

from ..conftest import latents
from ..conftest import pattern_setup as _setup


def test_batched_ipm_matches_highs_on_per_sample_operators():
    chain, z, x = _setup()
    z0 = z + 0.3 * latents(*z.shape, seed=7)  # a wrong pattern: the LP optimum has t > 0
    prob = pattern_problem(chain, chain.patterns(z0), x, tol=1e-9 * torch.ones(len(x), dtype=x.dtype))
    assert prob.A.shape == (12, 40 + 30 + 200, 6)
    ipm, ref = solve_ipm(prob), solve_highs(prob)
    assert ipm.ok.all() and ref.ok.all()
    torch.testing.assert_close(ipm.t, ref.t, rtol=1e-6, atol=1e-8)
    assert (ref.t > 1e-6).any()
