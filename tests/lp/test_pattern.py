"""The activation-pattern LP: per-sample operators in the batched IPM (checked against HiGHS)."""

import torch

import ganinvert as gi
from ganinvert.lp.highs import solve_highs
from ganinvert.lp.ipm import solve_ipm
from ganinvert.lp.pattern import pattern_problem

from ..conftest import latents, random_mlp


def _setup(dims=(6, 40, 30, 200), n=12, seed=0):
    G = random_mlp(list(dims), seed=seed)
    chain = gi.to_chain(G)
    z = latents(n, dims[0], seed=seed + 1)
    with torch.no_grad():
        x = chain(z).flatten(1)
    return chain, z, x


def test_batched_ipm_matches_highs_on_per_sample_operators():
    chain, z, x = _setup()
    z0 = z + 0.3 * latents(*z.shape, seed=7)  # a wrong pattern: the LP optimum has t > 0
    prob = pattern_problem(chain, chain.patterns(z0), x, tol=1e-9 * torch.ones(len(x), dtype=x.dtype))
    assert prob.A.shape == (12, 40 + 30 + 200, 6)
    ipm, ref = solve_ipm(prob), solve_highs(prob)
    assert ipm.ok.all() and ref.ok.all()
    torch.testing.assert_close(ipm.t, ref.t, rtol=1e-6, atol=1e-8)
    assert (ref.t > 1e-6).any()
