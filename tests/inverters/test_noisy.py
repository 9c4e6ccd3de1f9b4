"""Noisy inversion: the l_inf and l_1 LPs with their threshold schedules track the noise level,
the certified bound holds wherever it is reported, the estimated noise level is a lower bound on
the true one, the batched solver agrees with HiGHS on every formulation, and bad options say
what is expected."""

import pytest
import torch

import ganinvert as gi
from ganinvert.activations import Identity, LeakyReLU, ReLU
from ganinvert.inverters.noisy import Noisy
from ganinvert.lp.highs import solve_highs
from ganinvert.lp.ipm import solve_ipm
from ganinvert.lp.noisy import relax_problem, threshold_problem

from ..conftest import StopsAfterLayers, latents, random_mlp, rel_err


def _noisy(G, n, k, eps, seed=0, clamp=True):
    z = latents(n, k, seed=seed + 1)
    with torch.no_grad():
        x0 = G(z)
    e = eps * (2 * torch.rand(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 1)
    return z, (x0 + e).clamp(min=0) if clamp else x0 + e


@pytest.mark.parametrize("norm", ["linf", "l1"])
@pytest.mark.parametrize("eps", [1e-6, 1e-4, 1e-2])
def test_error_tracks_the_noise_level(eps, norm):
    G = random_mlp([20, 100, 500], seed=0)
    z, x = _noisy(G, 40, 20, eps)
    r = gi.invert(G, x, norm=norm, noise=eps)
    med = rel_err(r.z, z).median().item()
    assert eps / 10 <= med <= 10 * eps  # measured about 1 eps (l_inf) and 6 eps (l_1)
    assert r.methods[0] == f"noisy-{norm}"
    assert all(m.startswith(f"{norm} fit") for m in r.messages)
    if norm == "l1":
        assert r.bound.isnan().all()  # the theory gives no l1 bound
        assert all(m.startswith("l1 fit, ||G(z) - x||_1 = ") for m in r.messages)


def test_certified_bound_holds_on_every_sample_where_reported():
    G = random_mlp([20, 200], seed=1)
    for eps in (1e-5, 1e-2):
        z, x = _noisy(G, 50, 20, eps, seed=3)
        r = gi.invert(G, x, norm="linf", noise=eps)
        rep = ~r.bound.isnan()
        assert rep.float().mean() > 0.9
        assert ((r.z - z).norm(dim=1)[rep] <= r.bound[rep]).all()


def test_l2_and_estimated_noise():
    G = random_mlp([10, 60, 300], seed=2)
    z, x = _noisy(G, 20, 10, 1e-4)
    assert rel_err(gi.invert(G, x, norm="l2", noise=1e-4).z, z).median() < 1e-2
    r = gi.invert(G, x, norm="linf")  # noise estimated from the data
    assert rel_err(r.z, z).median() < 1e-2 and r.bound.isnan().all()  # no bound without a known noise level


def test_thresholded_layer_lp_matches_highs():
    G = random_mlp([8, 50], seed=4)
    _, x = _noisy(G, 6, 8, 1e-2)
    prob = threshold_problem(ReLU(), G[0].weight.detach(), G[0].bias.detach(), x,
                             torch.full((6, 1), 1e-2, dtype=torch.float64), (float("-inf"), float("inf")))
    torch.testing.assert_close(solve_ipm(prob).t, solve_highs(prob).t, rtol=1e-6, atol=1e-9)


def test_bad_noisy_options_are_typed_errors():
    G = random_mlp([4, 20, 50], seed=0)
    x = G(latents(2, 4)).detach()
    with pytest.raises(gi.InvalidInputError, match=r"Expected norm in \('linf', 'l1', 'l2'\), Got: 'l3'"):
        gi.invert(G, x, norm="l3")
    with pytest.raises(gi.InvalidInputError, match="noise >= 0"):
        gi.invert(G, x, noise=-1.0)
    with pytest.raises(gi.InvalidInputError, match="default method"):
        gi.invert(G, x, method="adam", noise=1e-3)
    T = random_mlp([4, 20, 50], out_act="tanh")
    with pytest.raises(gi.InvalidInputError, match="Tanh"):
        gi.invert(T, T(latents(2, 4)).detach(), norm="linf", noise=1e-3)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_joint_polish_beats_the_layer_by_layer_fit(norm):
    # the layer-wise fit passes each layer's error on to the next; the fit over all layers at
    # once (pattern fixed) does not: on 20-100-500 it comes within Adam's least-squares error
    # (l2) or below it (linf)
    G = random_mlp([20, 100, 500], seed=0)
    z, x = _noisy(G, 60, 20, 1e-4, seed=5)
    lw = gi.invert(G, x, method=gi.Noisy(norm=norm, noise=1e-4, joint=False))
    jt = gi.invert(G, x, method=gi.Noisy(norm=norm, noise=1e-4))
    assert rel_err(jt.z, z).median() < 0.8 * rel_err(lw.z, z).median()
    assert sum("joint polish" in m for m in jt.messages) >= 30


def test_bound_after_the_joint_polish_still_holds():
    # a second layer with large singular values keeps the carried threshold above the error it
    # passes down, so bounds are reported on a two-layer net; the polish adds its move to them
    G = random_mlp([6, 60, 300], seed=7)
    with torch.no_grad():
        G[2].weight.mul_(1000.0)
    z, x = _noisy(G, 40, 6, 1e-5, seed=8)
    lw = gi.invert(G, x, method=gi.Noisy(noise=1e-5, joint=False))
    jt = gi.invert(G, x, method=gi.Noisy(noise=1e-5))
    rep = ~jt.bound.isnan()
    assert rep.float().mean() > 0.5 and any("joint polish" in m for m in jt.messages)
    assert ((jt.z - z).norm(dim=1)[rep] <= jt.bound[rep]).all()
    assert (jt.bound[rep] >= lw.bound[rep]).all() and (jt.bound[rep] > lw.bound[rep]).any()


def test_l1_on_a_leaky_net_with_estimated_noise():
    G = random_mlp([10, 80, 400], act="leaky", out_act="leaky", seed=3)
    z, x = _noisy(G, 30, 10, 1e-4, clamp=False)
    assert rel_err(gi.invert(G, x, norm="l1").z, z).median() < 1e-3


@pytest.mark.parametrize("act, u_range", [(ReLU(), (float("-inf"), float("inf"))), (ReLU(), (0.0, float("inf"))),
                                          (LeakyReLU(0.2), (float("-inf"), float("inf"))),
                                          (Identity(), (float("-inf"), float("inf")))])
def test_relax_lp_matches_highs(act, u_range):
    # the l_1 relax LP (a cost on u, exact penalty on t) solved by the batched IPM reaches HiGHS's
    # optimal value; t = 0 since the true pre-image is feasible at tau = eps
    G = random_mlp([20, 200], seed=4)
    A, b = G[0].weight.detach(), G[0].bias.detach()
    z = latents(12, 20, seed=1)
    z = z.abs() if u_range[0] == 0 else z
    eps = 1e-2
    y = act.forward(z @ A.T + b) + eps * (2 * torch.rand(12, 200, generator=torch.Generator().manual_seed(0),
                                                           dtype=torch.float64) - 1)
    prob = relax_problem(act, A, b, y, torch.full((12, 1), eps, dtype=torch.float64), u_range)
    si, sh = solve_ipm(prob), solve_highs(prob)
    assert si.ok.all() and sh.ok.all() and (si.t <= 1e-9).all()
    value = lambda sol: (prob.cost * sol.u).sum(1) + sol.t  # noqa: E731
    torch.testing.assert_close(value(si), value(sh), rtol=1e-6, atol=1e-9)
    if not isinstance(act, Identity):  # the fitted rows carry a cost: not a mere feasibility point
        assert (value(sh) < 0).all()


def test_estimated_noise_is_a_lower_bound_on_the_true_level():
    G = random_mlp([20, 100, 500], seed=0)
    for eps in (1e-5, 1e-2):
        z, x = _noisy(G, 20, 20, eps, clamp=False)
        with torch.no_grad():
            true = (x - G(z)).abs().amax(1)
        last = G[-2]
        est = Noisy()._estimate_noise(last.weight.detach(), last.bias.detach(), ReLU(), x,
                                      (0.0, float("inf")), rtol=1e-12)
        assert (est <= true).all() and (est >= true / 2).all()  # measured: 0.89 to 1.0 of it


def test_negative_noisy_values_accepted_up_to_the_noise_level():
    # uniform noise takes ReLU outputs below zero: valid data for the noisy method, not for exact
    G = random_mlp([20, 100, 500], seed=0)
    z, x = _noisy(G, 10, 20, 1e-3, clamp=False)
    assert (x < 0).any()
    r = gi.invert(G, x, norm="linf", noise=1e-3)
    assert all(s is gi.Status.APPROXIMATE for s in r.status) and rel_err(r.z, z).median() < 1e-2
    with torch.no_grad():
        achieved = (G(r.z) - x).abs().amax(1)
    torch.testing.assert_close(r.fit_residual, achieved, rtol=1e-12, atol=0.0)
    assert f"||G(z) - x||_inf = {achieved[0].item():.3g}" in r.messages[0]
    assert gi.invert(G, G(z).detach()).fit_residual is None  # only noisy fits report one
    bad = gi.invert(G, x - 0.01, norm="linf", noise=1e-3)
    assert bad.status[0] is gi.Status.INVALID
    assert "(noise level 0.001 allowed). Hint: pass a larger noise=" in bad.messages[0]
    assert gi.invert(G, x, noise=None, norm="l1").status[0] is gi.Status.APPROXIMATE  # estimated: any range


def test_fit_residual_is_in_the_chosen_norm_on_observed_pixels():
    G = random_mlp([10, 80, 400], seed=2)
    z, x = _noisy(G, 8, 10, 1e-3)
    mask = torch.rand(400, generator=torch.Generator().manual_seed(4)) < 0.9
    x_obs = torch.where(mask, x, torch.full_like(x, float("nan")))  # unobserved pixels are not data
    for norm, order in (("l1", 1), ("l2", 2)):
        r = gi.invert(G, x_obs, norm=norm, noise=1e-3, mask=mask)
        with torch.no_grad():
            want = torch.linalg.vector_norm((G(r.z) - x)[:, mask], ord=order, dim=1)
        torch.testing.assert_close(r.fit_residual, want, rtol=1e-12, atol=0.0)
        assert rel_err(r.z, z).median() < 1e-2


def test_fit_residual_is_nan_exactly_for_invalid_samples():
    G = random_mlp([4, 20, 50], seed=0)
    _, x = _noisy(G, 3, 4, 1e-3)
    x[1] = float("nan")
    r = gi.invert(G, x, norm="linf", noise=1e-3)
    assert r.status[1] is gi.Status.INVALID and r.fit_residual.isnan().tolist() == [False, True, False]
    x[:] = float("nan")  # a batch with no valid sample still reports the field, as nan
    assert gi.invert(G, x, norm="linf", noise=1e-3).fit_residual.isnan().all()


def test_a_time_limit_that_ends_before_the_pass_leaves_every_sample_approximate_and_says_so():
    # the shipped LeakyReLU VAE, 8 noisy samples: the noise estimate alone outlasts the limit, so
    # the backward pass never starts (the joint polish once read its problem, never built, and
    # raised AttributeError)
    from ganinvert import models
    G = models.load("vae_leaky_20_200_500_784").generator.double()
    _, x = _noisy(G, 8, 20, 1e-3, clamp=False)
    r = gi.invert(G, x, method="noisy", time_limit=0.05, progress=False)
    assert all(s is gi.Status.APPROXIMATE for s in r.status)
    assert all(m.startswith("stopped by time_limit=0.05s during ") for m in r.messages)
    assert r.bound.isnan().all()


def test_a_pass_the_time_limit_cuts_short_certifies_no_bound():
    # the limit stops the pass after the last layer: no latent was reached, so no error bound
    # may be reported for it (the bound of the last layer alone once was, for a zero latent)
    G = random_mlp([6, 60, 300], seed=7)  # the net whose bounds hold (test_bound_after_the_joint_polish...)
    with torch.no_grad():
        G[2].weight.mul_(1000.0)
    _, x = _noisy(G, 12, 6, 1e-5, seed=8)
    chain = gi.to_chain(G)
    full = Noisy(noise=1e-5).solve(chain, x, rtol=1e-6)
    assert torch.isfinite(full.bound).sum() >= 6  # uncut, most samples get their bound
    raw = Noisy(noise=1e-5).solve(chain, x, rtol=1e-6, budget=StopsAfterLayers(1))
    assert raw.bound is None or raw.bound.isnan().all()
    assert (raw.z == 0).all() and all("stopped before reaching the latent" in m for m in raw.messages)
