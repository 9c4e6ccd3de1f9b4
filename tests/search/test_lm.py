"""Levenberg-Marquardt on the last pre-activation: reaches G(z) = x from z = 0 on a trained DCGAN
(known answers z*), never ends worse than it started, and stops when the budget does."""

import torch

import ganinvert as gi
from ganinvert.budget import Budget
from ganinvert.search.lm import levenberg_marquardt

from ..conftest import latents, random_mlp


def test_lm_from_zero_recovers_the_shipped_dcgans_latents():
    from ganinvert import models
    chain = gi.to_chain(models.load("dcgan").generator.double())
    z = latents(6, 32, seed=7)
    x = chain.forward_all(z)[-1]
    sol = levenberg_marquardt(chain, torch.zeros_like(z), x, rtol=1e-6, steps=60)
    ok = sol.residual <= 1e-6
    assert ok.sum() >= 5  # measured: 31 of 32 from z = 0
    err = (sol.z - z).norm(dim=1) / z.norm(dim=1)
    assert (err[ok] < 1e-6).all()  # steps go on below rtol: z = z* as far as G's conditioning allows
    assert (sol.steps <= 60).all() and (sol.steps[ok] < 60).all()


def test_lm_never_ends_worse_than_its_start():
    for seed in range(4):
        chain = gi.to_chain(random_mlp([6, 12, 10, 40], seed=seed, out_act="tanh"))
        z = latents(8, 6, seed=seed + 10)
        x = chain.forward_all(z)[-1]
        start = latents(8, 6, seed=seed + 20)
        before = chain.relative_residual(start, x)
        sol = levenberg_marquardt(chain, start, x, rtol=1e-6, steps=15)
        assert (sol.residual <= before + 1e-12).all()
        torch.testing.assert_close(sol.residual, chain.relative_residual(sol.z, x))


def test_lm_stops_when_the_budget_has_expired():
    chain = gi.to_chain(random_mlp([6, 30, 90], seed=1))
    x = chain.forward_all(latents(3, 6, seed=2))[-1]
    start = latents(3, 6, seed=3)
    now = [0.0]
    budget = Budget(time_limit=1, progress=False, clock=lambda: now[0])
    now[0] = 2.0
    sol = levenberg_marquardt(chain, start, x, rtol=1e-6, budget=budget)
    assert torch.equal(sol.z, start) and (sol.steps == 0).all()


def test_a_samples_other_starts_stop_once_one_of_them_solves_it():
    # rows 0-2 start sample 0 (row 0 next to z*, the others far off), rows 3-5 sample 1: with
    # group= sample 0's far starts stop in the round that solved it, where alone they walk on
    chain = gi.to_chain(random_mlp([6, 30, 90], seed=1))
    z = latents(2, 6, seed=2)
    x = chain.forward_all(z)[-1]
    far = 3.0 * latents(6, 6, seed=4)
    starts = torch.cat([z[:1] + 1e-3 * far[:1], far[1:3], far[3:]])
    xs = x[[0, 0, 0, 1, 1, 1]]
    alone = levenberg_marquardt(chain, starts, xs, rtol=1e-6, steps=40)
    grouped = levenberg_marquardt(chain, starts, xs, rtol=1e-6, steps=40, group=torch.tensor([0, 0, 0, 1, 1, 1]))
    assert grouped.residual[0] <= 1e-6 and grouped.steps[0] == alone.steps[0]
    assert (grouped.steps[1:3] <= grouped.steps[0]).all() and (grouped.steps[1:3] < alone.steps[1:3]).all()
    assert (grouped.residual[1:3] > 1e-6).all()  # stopped, not solved
    assert (grouped.residual[3:] <= 1e-6).any()  # the other sample is searched and solved on its own


def test_the_normal_equations_over_the_gathered_rows_are_the_dense_ones_and_do_not_depend_on_the_batch():
    # each sample's rows outside their interval are gathered into its own power-of-two bucket:
    # the sums match the dense J^T diag(a^2) J, and a sample alone gets the same bits as in a batch
    from ganinvert.search.lm import _normal
    gen = torch.Generator().manual_seed(0)
    J = torch.randn(6, 784, 20, generator=gen)
    w = torch.rand(6, 784, generator=gen, dtype=torch.float64) + 0.5
    live = torch.rand(6, 784, generator=gen) < torch.tensor([0.02, 0.05, 0.1, 0.2, 0.5, 1.0])[:, None]
    r = torch.randn(6, 784, generator=gen, dtype=torch.float64) * live
    H, g = _normal(J, r, w)
    Jw = (w * live).unsqueeze(-1) * J.double()
    torch.testing.assert_close(H, Jw.transpose(1, 2) @ Jw, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(g, (Jw * r.unsqueeze(-1)).sum(1), rtol=1e-5, atol=1e-3)
    for i in range(6):
        Hi, gi_ = _normal(J[i:i + 1], r[i:i + 1], w[i:i + 1])
        assert torch.equal(Hi[0], H[i]) and torch.equal(gi_[0], g[i])


def test_lm_on_rows_formed_from_the_last_operator_recovers_an_expanding_relu_decoders_latents():
    # a ReLU output 4x wider than its input: LM forms J's rows as A_i J_h for the rows that
    # matter, and reaches z* from next to it as the whole Jacobian does
    from ganinvert.search.lm import _row_source
    chain = gi.to_chain(random_mlp([8, 40, 200], out_act="relu", seed=5))
    assert _row_source(chain) is not None
    assert _row_source(gi.to_chain(random_mlp([8, 40, 200], out_act="tanh", seed=5))) is None
    z = latents(16, 8, seed=6)
    x = chain.forward_all(z)[-1]
    sol = levenberg_marquardt(chain, z + 0.05 * latents(16, 8, seed=7), x, rtol=1e-6, steps=40)
    ok = sol.residual <= 1e-6
    assert ok.sum() >= 14
    assert ((sol.z - z).norm(dim=1)[ok] / z.norm(dim=1)[ok] < 1e-8).all()


def test_looks_caps_a_stalling_descent():
    # looks=3 with stall: each descent ends after 3 windows of 2 Jacobians however it
    # progresses; without looks some go on past 6
    chain = gi.to_chain(random_mlp([6, 12, 10, 40], seed=0))  # far starts creep on this one
    x = chain.forward_all(latents(12, 6, seed=2))[-1]
    start = 3.0 * latents(12, 6, seed=5)
    free = levenberg_marquardt(chain, start, x, rtol=1e-6, steps=40, stall=1e-9)
    capped = levenberg_marquardt(chain, start, x, rtol=1e-6, steps=40, stall=1e-9, looks=3)
    assert (free.steps > 6).any() and (capped.steps <= 6).all()
    assert (capped.residual <= chain.relative_residual(start, x) + 1e-12).all()


def test_lm_reaches_z_star_from_zero_under_deep_output_saturation():
    # the shipped DCGAN with its last layer x4: 89% of the pixels within 1e-5 of -1 or 1, and most
    # of the rest near them. Every row weighs 1 in LM's misfit: from z = 0 all 8 reach z* within
    # 12 Jacobians (measured: 6-9). With the rows weighted by Tanh's slope (the observation's
    # bounds' weights, floored at 1e-2) 3 of 8 did within 30
    from ganinvert import models
    G = models.load("dcgan").generator.double()
    last = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
    with torch.no_grad():
        last.weight.mul_(4)
    chain = gi.to_chain(G)
    z = latents(8, 32, seed=7)
    x = chain.forward_all(z)[-1]
    assert ((1 - x.abs()) < 1e-5).double().mean() > 0.85
    assert (chain.layers[-1].act.fit_bounds(x).weight < 0.1).double().mean() > 0.05  # rows the weights would damp
    sol = levenberg_marquardt(chain, torch.zeros_like(z), x, rtol=1e-6, steps=12)
    assert (sol.residual <= 1e-6).all()
    assert ((sol.z - z).norm(dim=1) / z.norm(dim=1) < 1e-6).all()  # z*: measured 2e-9 to 1e-8


def test_a_per_sample_stall_stops_each_sample_as_its_own_would():
    # stall (B,): the first half stop once their misfit stalls, the second half never do
    chain = gi.to_chain(random_mlp([6, 12, 10, 40], seed=0))  # far starts creep on this one
    x = chain.forward_all(latents(12, 6, seed=2))[-1]
    start = 3.0 * latents(12, 6, seed=5)
    stall = torch.tensor([0.3] * 6 + [0.0] * 6, dtype=torch.float64)
    kw = dict(rtol=1e-6, steps=40, jacobian_dtype=None)  # float64 throughout: float32 rounds by batch
    mixed = levenberg_marquardt(chain, start, x, stall=stall, **kw)
    quick = levenberg_marquardt(chain, start[:6], x[:6], stall=0.3, **kw)
    free = levenberg_marquardt(chain, start[6:], x[6:], **kw)
    assert torch.equal(mixed.steps, torch.cat([quick.steps, free.steps]))
    assert (free.steps > quick.steps.max()).any()
    capped = levenberg_marquardt(chain, start, x, stall=stall, looks=1, **kw)  # looks: only where stall > 0
    assert (capped.steps[:6] <= 2).all() and torch.equal(capped.steps[6:], free.steps)
