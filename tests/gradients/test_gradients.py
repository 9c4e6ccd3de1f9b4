"""Gradients through the inversion (``invert(differentiable=True)``): gradcheck against finite
differences of the inversion itself, the known derivative along the range, agreement with the
layer LPs' own differentiation (cvxpylayers), and refusal where the answer is not a function of x."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import ganinvert as gi
from ganinvert.chain import Chain
from ganinvert.operators import Dense
from ganinvert.models.registry import load
from tests.conftest import latents, random_mlp

#: gradcheck re-inverts at x +- eps (weights +- eps), off the range by about eps: with rtol=1e-4
#: those still count as G(z) = x and take the same answer map (the layers' active sets) as x itself;
#: auto's search brings a re-inversion the layer-wise pass misreads (a perturbed zero read as a
#: positive unit) back to the latent's region; a small search keeps hundreds of inversions cheap
AUTO = dict(method=gi.Auto(starts=1, kicks=0, pattern_seeds=1, pattern_rounds=5), rtol=1e-4)

NETS = {  # random expanding nets with bias, one per hidden activation
    "relu": dict(dims=(4, 12, 30), act="relu", out_act="tanh"),
    "leaky": dict(dims=(4, 12, 30), act="leaky", out_act="leaky"),
    "tanh": dict(dims=(4, 12, 30), act="tanh", out_act="tanh"),
}


def _chain_with(chain: Chain, tensors: list[torch.Tensor]) -> Chain:
    """``chain`` with each layer's weight and bias replaced by ``tensors`` (W0, b0, W1, b1, ...)."""
    layers = tuple(dataclasses.replace(layer, op=Dense(tensors[2 * i]), bias=tensors[2 * i + 1])
                   for i, layer in enumerate(chain.layers))
    return Chain(layers, chain.in_shape)


def _weights(chain: Chain) -> list[torch.Tensor]:
    return [t.detach().clone().requires_grad_(True) for layer in chain.layers for t in (layer.op.weight, layer.bias)]


def _gradcheck_net(name: str, *, fast: bool) -> tuple[list[str], float, bool, bool]:
    """On two EXACT samples of net ``name``: their statuses (with the gradient mask), the latent
    error, and gradcheck's verdicts with respect to x and to every weight and bias."""
    G = random_mlp(**NETS[name], seed=11)
    z = latents(2, 4, seed=12)
    x = G(z).detach()
    res = gi.invert(G, x, differentiable=True, **AUTO)
    statuses = [f"{s.name}{'+grad' if d else ''}" for s, d in zip(res.status, res.differentiable.tolist(), strict=True)]
    xx = x.clone().requires_grad_(True)
    on_x = torch.autograd.gradcheck(lambda v: gi.invert(G, v, differentiable=True, **AUTO).z, (xx,), fast_mode=fast)
    chain = gi.to_chain(G)
    on_w = torch.autograd.gradcheck(
        lambda *w: gi.invert(_chain_with(chain, list(w)), x, differentiable=True, **AUTO).z, tuple(_weights(chain)),
        fast_mode=fast)
    return statuses, (res.z.detach() - z).abs().max().item(), on_x, on_w


@pytest.mark.parametrize("name", list(NETS))
def test_gradcheck_with_respect_to_x_and_the_weights_on_random_expanding_nets(name):
    """gradcheck's fast mode: the Jacobian against finite differences along random directions of
    x and of every weight and bias at once."""
    statuses, z_err, on_x, on_w = _gradcheck_net(name, fast=True)
    assert statuses == ["EXACT+grad"] * 2 and z_err <= 1e-9
    assert on_x and on_w


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NETS))
def test_full_gradcheck_on_random_expanding_nets(name):
    """Every entry of the Jacobian (about 1,000 re-inversions per net)."""
    statuses, z_err, on_x, on_w = _gradcheck_net(name, fast=False)
    assert statuses == ["EXACT+grad"] * 2 and z_err <= 1e-9
    assert on_x and on_w


def test_the_derivative_along_the_range_is_the_latent_direction():
    # x moving as G(z + s d) has the answer z + s d: dz/dx applied to J_G d is d, exactly
    G = random_mlp((6, 30, 90), act="relu", out_act="relu", seed=21)
    z = latents(3, 6, seed=22)
    d = latents(3, 6, seed=23)
    _, x_dot = torch.autograd.functional.jvp(G, z, d)
    x = G(z).detach()
    _, z_dot = torch.autograd.functional.jvp(lambda v: gi.invert(G, v, differentiable=True).z, x, x_dot)
    assert (z_dot - d).abs().max() <= 1e-9


def test_gradients_reach_the_parameters_of_the_module_itself():
    G = random_mlp((5, 20, 60), act="relu", out_act="tanh", seed=31)
    x = G(latents(3, 5, seed=32)).detach()
    c = latents(3, 5, seed=33)
    (gi.invert(G, x, differentiable=True).z * c).sum().backward()
    chain = gi.to_chain(G)
    weights = _weights(chain)
    (gi.invert(_chain_with(chain, weights), x, differentiable=True).z * c).sum().backward()
    assert torch.allclose(G[0].weight.grad, weights[0].grad, rtol=1e-10, atol=1e-12)
    assert torch.allclose(G[2].bias.grad, weights[3].grad, rtol=1e-10, atol=1e-12)
    assert G[0].weight.grad.abs().max() > 0


def _decoder_exact(n: int = 3):
    G = load("vae_relu_20_60_784").generator.double()
    z = latents(12, 20, seed=41)
    x = G(z).detach()
    res = gi.invert(G, x)
    keep = res.exact.nonzero().flatten()[:n]
    assert keep.numel() == n
    return G, z[keep], x[keep]


def test_gradcheck_on_exact_samples_of_the_paper_decoder():
    G, z, x = _decoder_exact(2)
    xx = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: gi.invert(G, v, differentiable=True, **AUTO).z, (xx,), fast_mode=True)
    chain = gi.to_chain(G)
    weights = [layer.op.weight.detach().clone().requires_grad_(True) for layer in chain.layers]

    def invert_with(*w):
        ch = Chain(tuple(dataclasses.replace(layer, op=Dense(wi)) for layer, wi in zip(chain.layers, w, strict=True)), chain.in_shape)
        return gi.invert(ch, x, differentiable=True, **AUTO).z

    assert torch.autograd.gradcheck(invert_with, tuple(weights), fast_mode=True)


def _both_gradients(G: nn.Module, x: torch.Tensor, c: torch.Tensor):
    out = []
    for method in ("layerwise", gi.Layerwise(solver="cvxpylayers")):
        G.zero_grad()
        xx = x.clone().requires_grad_(True)
        res = gi.invert(G, xx, method=method, differentiable=True)
        assert res.status.count(gi.Status.EXACT) == x.shape[0]
        (res.z * c).sum().backward()
        out.append([xx.grad] + [p.grad.clone() for p in G.parameters()])
    return out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("name", list(NETS))
def test_native_gradients_equal_the_layer_lps_own_differentiation(name):
    pytest.importorskip("cvxpylayers")
    G = random_mlp(**dict(NETS[name], dims=(5, 20, 60)), seed=51)
    x = G(latents(3, 5, seed=52)).detach()
    native, lp = _both_gradients(G, x, latents(3, 5, seed=53))
    for a, b in zip(native, lp, strict=True):
        assert _rel(a, b) <= 1e-6


def test_native_gradients_equal_the_lp_gradients_on_the_paper_decoder():
    pytest.importorskip("cvxpylayers")
    G, z, x = _decoder_exact(2)
    native, lp = _both_gradients(G, x, latents(2, 20, seed=61))
    # 2e-6 measured: the reference's own precision here (diffcp's LSMR derivative at tolerance 1e-10
    # on the 784-row LP; moving the LP's stand-in for open sides moves it by 2e-6 .. 3e-4)
    for a, b in zip(native, lp, strict=True):
        assert _rel(a, b) <= 1e-5


def test_a_sample_without_a_gradient_refuses_one_and_spares_the_others():
    G = random_mlp((5, 20, 60), act="relu", out_act="tanh", seed=71)
    x = G(latents(2, 5, seed=72)).detach()
    x[1, 0] = float("nan")  # INVALID: no answer, no gradient
    xx = x.clone().requires_grad_(True)
    res = gi.invert(G, xx, differentiable=True)
    assert res.differentiable.tolist() == [True, False]
    with pytest.raises(gi.NotDifferentiableError, match=r"1 sample\(s\).*first: sample 1: x has 1 NaN"):
        res.z.sum().backward(retain_graph=True)
    res.z[res.differentiable].sum().backward()
    assert torch.isfinite(xx.grad[0]).all() and xx.grad[0].abs().max() > 0
    assert (xx.grad[1] == 0).all()


def test_a_contracting_layer_has_no_gradient_and_says_which():
    G = random_mlp((6, 60, 20), act="relu", out_act="tanh", seed=81)  # ~30 live inputs, 20 rows: not a point
    x = G(latents(2, 6, seed=82)).detach().requires_grad_(True)
    res = gi.invert(G, x, differentiable=True, **AUTO)
    assert not res.differentiable.any()
    assert res.z.requires_grad
    with pytest.raises(gi.NotDifferentiableError, match=r"layer 1's active equations do not pin its input "
                                                        r"\(20 pinned rows for \d+ free inputs\)"):
        res.x_hat.sum().backward()


def test_unobserved_pixels_get_no_gradient_under_a_mask():
    G = random_mlp((5, 20, 60), act="leaky", out_act="tanh", seed=91)
    z = latents(2, 5, seed=92)
    x = G(z).detach().requires_grad_(True)
    mask = torch.rand(60, generator=torch.Generator().manual_seed(93)) < 0.6
    res = gi.invert(G, x, mask=mask, differentiable=True)
    assert (res.z.detach() - z).abs().max() <= 1e-9
    res.z.sum().backward()
    assert (x.grad[:, ~mask] == 0).all() and (x.grad[:, mask] != 0).any()


def test_without_differentiable_nothing_is_on_the_graph():
    G = random_mlp((5, 20, 60), seed=101)
    x = G(latents(2, 5)).detach().requires_grad_(True)
    res = gi.invert(G, x)
    assert not res.z.requires_grad and not res.x_hat.requires_grad and res.differentiable is None


def test_refused_under_vmap_and_with_a_measurement():
    G = random_mlp((5, 20, 60), seed=111)
    x = G(latents(2, 5)).detach()
    with pytest.raises(gi.InvalidInputError, match="outside torch.func transforms"):
        torch.func.vmap(lambda v: gi.invert(G, v, differentiable=True).z)(x)
    with pytest.raises(gi.InvalidInputError, match="differentiable=True without measurement="):
        gi.invert(G, x[:, :10], measurement=torch.randn(10, 60, dtype=torch.float64), differentiable=True)


def test_the_inversion_module_owns_the_generator_and_passes_gradients_to_it():
    G = random_mlp((5, 20, 60), act="relu", out_act="tanh", seed=121)
    project = gi.Inversion(G, rtol=1e-8)
    assert set(dict(project.named_parameters())) == {"generator.0.weight", "generator.0.bias",
                                                     "generator.2.weight", "generator.2.bias"}
    z, d, c = latents(2, 5, seed=122), latents(2, 5, seed=123), latents(2, 60, seed=124)
    x = G(z).detach().requires_grad_(True)
    res = project(x)
    assert [s.name for s in res.status] == ["EXACT", "EXACT"]
    (res.x_hat * c).sum().backward()
    # x_hat = G(z(x)) follows x along the range: for x_dot = J_G d, <grad_x, x_dot> = <c, x_dot>
    _, x_dot = torch.autograd.functional.jvp(G, z, d)
    assert (x.grad * x_dot).sum().item() == pytest.approx((c * x_dot).sum().item(), rel=1e-9)
    assert G[0].weight.grad.abs().max() > 0
    with pytest.raises(gi.InvalidInputError, match="without differentiable="):
        gi.Inversion(G, differentiable=False)


ADAM = gi.Adam(steps=100, restarts=1, polish=50, seed=0)  # any inverter: it only locates the region


def _off_range(seed: int = 131):
    """A ReLU net with a LeakyReLU output and observations off its range (5% noise)."""
    G = random_mlp((4, 20, 40), act="relu", out_act="leaky", seed=3)
    g = torch.Generator().manual_seed(seed)
    x = G(latents(3, 4, seed=seed)) + 0.05 * torch.randn(3, 40, generator=g, dtype=torch.float64)
    return G, x.detach()


def test_off_the_range_the_projection_fits_at_least_as_well_as_the_inverter_and_has_a_gradient():
    G, x = _off_range()
    plain = gi.invert(G, x, method=ADAM)
    res = gi.invert(G, x, method=ADAM, differentiable=True)
    assert all(s is gi.Status.APPROXIMATE for s in res.status) and bool(res.differentiable.all())
    assert (res.residual <= plain.residual * (1 + 1e-9)).all()
    # a minimum of the misfit over the region's closure: no feasible descent is left, so a small
    # move of z along any direction inside the region does not lower ||G(z) - x||
    z = res.z.detach()
    base = (G(z) - x).norm(dim=1)
    for d in latents(8, 4, seed=7):
        moved = (G(z + 1e-7 * d) - x).norm(dim=1)
        assert (moved >= base - 1e-12).all()


def test_gradcheck_off_the_range_with_respect_to_x_and_the_weights():
    G, x = _off_range()
    xx = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: gi.invert(G, v, method=ADAM, differentiable=True).z, (xx,))
    chain = gi.to_chain(G)
    weights = _weights(chain)
    assert torch.autograd.gradcheck(
        lambda *w: gi.invert(_chain_with(chain, list(w)), x, method=ADAM, differentiable=True).z, tuple(weights),
        fast_mode=True)


def test_off_the_range_with_no_hidden_unit_at_a_wall_the_derivative_is_the_regions_pseudo_inverse():
    # inside the region, G is affine with Jacobian J and the output rows all pinned (LeakyReLU):
    # the projection's derivative is the weighted pseudo-inverse of J (weights: the branch slopes)
    G = random_mlp((4, 20, 40), act="leaky", out_act="leaky", seed=5)
    x = (G(latents(2, 4, seed=141)) + 1e-3 * latents(2, 40, seed=142)).detach()
    res = gi.invert(G, x, method=ADAM, differentiable=True)
    assert bool(res.differentiable.all())
    v = latents(2, 40, seed=143)
    _, z_dot = torch.autograd.functional.jvp(lambda u: gi.invert(G, u, method=ADAM, differentiable=True).z, x, v)
    z = res.z.detach()
    for i in range(2):
        J = torch.autograd.functional.jacobian(lambda u: G(u[None])[0], z[i])  # (40, 4)
        p = G[:-1](z[i][None])[0]  # the output pre-activation
        w = torch.where(p >= 0, 1.0, 0.2).to(torch.float64)  # slope: the row weight in output units
        Jp = J / w[:, None]  # d p / d z
        want = torch.linalg.solve((Jp.T * w ** 2) @ Jp, (Jp.T * w ** 2) @ (v[i] / w))
        assert torch.allclose(z_dot[i], want, rtol=1e-8, atol=1e-10)


def test_an_invalid_sample_leaves_the_weight_gradients_finite():
    # its inf pixel must not reach the weights as inf * 0 = nan through the batched backward
    G = random_mlp((5, 20, 60), act="relu", out_act="leaky", seed=151)
    x = G(latents(3, 5, seed=152)).detach()
    x[2, 0] = float("inf")
    res = gi.invert(G, x, differentiable=True)
    assert res.differentiable.tolist() == [True, True, False]
    res.z[res.differentiable].sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in G.parameters())
