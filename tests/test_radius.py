"""The certified uniqueness radius (ganinvert.radius, docs/design.md §3.8): known answers, the
bound's claim checked by searching for other pre-images, and what invert() reports."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import event, given, note
from hypothesis import strategies as st
from torch import nn

import ganinvert as gi
from ganinvert.radius import unique_radius
from ganinvert.search.lm import levenberg_marquardt

from .conftest import latents, random_mlp
from .strategies import build, latents_of, specs


def _abs_net() -> nn.Module:
    """``G(z) = relu(z) + relu(-z) = |z|``: ``z`` and ``-z`` are the two pre-images of every x."""
    net = nn.Sequential(nn.Linear(1, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net[2].weight.fill_(1.0)
    return net


def test_the_radius_reaches_the_second_pre_image_of_abs():
    """At z = 2 the region is z > 0 (radius 2); past it the bound proves up to the other
    pre-image, -2, at distance 4, and not beyond: the bound is tight here."""
    r = unique_radius(gi.to_chain(_abs_net()), torch.tensor([[2.0], [0.5]], dtype=torch.float64))
    torch.testing.assert_close(r, torch.tensor([4.0, 1.0], dtype=torch.float64), rtol=2e-3, atol=0)
    assert (r <= torch.tensor([4.0, 1.0], dtype=torch.float64)).all()  # never past the other pre-image


def test_the_radius_is_the_regions_inscribed_ball_where_no_bound_applies():
    """One ReLU layer of unit rows in R^2, then an identity output: the region of z = (1, 3) is the
    quadrant, whose inscribed ball at z has radius 1; where the deviation bound is unavailable (an
    operator without ``abs_bound``), that is the radius."""
    W = torch.eye(2, dtype=torch.float64)
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(W)
        net[2].weight.copy_(torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    chain = gi.to_chain(net)
    z = torch.tensor([[1.0, 3.0], [-1.0, 3.0]], dtype=torch.float64)
    last = chain.layers[-1]
    blind = gi.Chain((chain.layers[0], dataclasses.replace(last, op=_NoBound(last.op))), chain.in_shape)
    r = unique_radius(blind, z)
    assert r[0].item() == pytest.approx(1.0, rel=1e-12)
    assert r[1].item() == 0.0  # unit 1 off: the output does not see z_1, rank 1 < 2, nothing proven


class _NoBound:
    """An operator that hides its ``abs_bound`` (as a torch function of unknown sign does)."""

    def __init__(self, op):
        self.op = op

    def __getattr__(self, name):
        return getattr(self.op, name)

    def abs_bound(self):
        return None


def test_no_kinked_unit_and_full_rank_is_unique_everywhere():
    """An affine injective generator (no hidden kink): the radius is infinite; with fewer outputs
    than latents, 0."""
    tall = gi.to_chain(nn.Sequential(nn.Linear(3, 5), nn.Tanh()).double())
    wide = gi.to_chain(nn.Sequential(nn.Linear(3, 2), nn.Tanh()).double())
    z = latents(4, 3)
    assert torch.isinf(unique_radius(tall, z)).all()
    assert (unique_radius(wide, z) == 0).all()


def test_smooth_hidden_activations_prove_nothing():
    """Tanh hidden units have no regions: the bound does not apply, the radius is 0."""
    chain = gi.to_chain(nn.Sequential(nn.Linear(3, 12), nn.Tanh(), nn.Linear(12, 30)).double())
    assert (unique_radius(chain, latents(3, 3)) == 0).all()


@st.composite
def _folded(draw):
    """``G(z) = act(V |W z|)``, written as ``V relu(W z) + V relu(-W z)``, and a latent: for square
    invertible ``W`` the other pre-images are known, ``z' = W^-1 S W z`` for every sign flip ``S``."""
    k = draw(st.integers(1, 4))
    n = draw(st.integers(k, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    W, V = torch.randn(k, k, generator=g, dtype=torch.float64), torch.randn(n, k, generator=g, dtype=torch.float64)
    out = draw(st.sampled_from([nn.Identity(), nn.Tanh()]))
    net = nn.Sequential(nn.Linear(k, 2 * k, bias=False), nn.ReLU(), nn.Linear(2 * k, n, bias=False), out).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.cat([W, -W]))
        net[2].weight.copy_(torch.cat([V, V], 1))
    return net, W, torch.randn(1, k, generator=g, dtype=torch.float64)


@given(case=_folded())
def test_the_radius_never_reaches_a_known_second_pre_image(case):
    """On generators whose other pre-images are known in closed form, the certified radius is
    never larger than the distance to the nearest one."""
    net, W, z = case
    k = z.shape[1]
    r = unique_radius(gi.to_chain(net), z)[0].item()
    a = W @ z[0]
    signs = torch.tensor([[1.0 - 2 * ((m >> i) & 1) for i in range(k)] for m in range(1, 2**k)], dtype=torch.float64)
    others = torch.linalg.solve(W, (signs * a).T).T  # (2^k - 1, k)
    nearest = (others - z).norm(dim=1).min().item()
    note(f"radius {r:.6g}, nearest other pre-image {nearest:.6g}")
    event("radius positive" if r > 0 else "radius zero")
    assert r <= nearest * (1 + 1e-9)


def _piecewise(spec):
    """The spec with every hidden activation piecewise linear (ReLU where it was smooth), the
    output activation kept: the chains the radius applies to."""
    keep = {"relu", "leaky", "prelu"}
    layers = tuple(layer if i == len(spec.layers) - 1 or layer.act in keep else dataclasses.replace(layer, act="relu")
                   for i, layer in enumerate(spec.layers))
    return dataclasses.replace(spec, layers=layers, classes=0)


@given(spec=specs(dtype=torch.float64).map(_piecewise))
def test_no_other_pre_image_is_found_inside_the_radius(spec):
    """The claim, searched for: Levenberg-Marquardt towards G(z) from points at 0.3 to 3 radii
    from z (and from random draws) never ends at another latent with the same output inside the
    radius, and moving z by 0.9 r in random directions always changes the output."""
    G = build(spec)
    chain = gi.to_chain(G)
    z = latents_of(spec, 3).reshape(3, -1)
    r = unique_radius(chain, z)
    event(f"radius {'inf' if torch.isinf(r).all() else 'positive' if (r > 0).all() else 'zero somewhere'}")
    with torch.no_grad():
        x = chain.output(z)
    for i in (r > 0).nonzero().flatten().tolist():
        ri = min(r[i].item(), 1e3)
        k = z.shape[1]
        dirs = torch.randn(40, k, generator=torch.Generator().manual_seed(spec.seed % 997), dtype=torch.float64)
        dirs /= dirs.norm(dim=1, keepdim=True)
        scale = torch.tensor([0.3, 0.6, 0.9, 1.5, 3.0], dtype=torch.float64).repeat(8)[:, None]
        starts = torch.cat([z[i] + ri * scale * dirs, 3 * dirs])
        xs = x[i].expand(starts.shape[0], -1)
        sol = levenberg_marquardt(chain, starts, xs, rtol=1e-9, steps=60, jacobian_dtype=None)
        dist = (sol.z - z[i]).norm(dim=1)
        found = sol.residual <= 1e-10
        note(f"sample {i}: radius {r[i]:.3e}, pre-images found at distances {dist[found].tolist()}")
        # a search that ends within 1e-4 r of z ended at z itself: an approximate pre-image there sits
        # within residual / sigma_min of z (a saturating output's sigma is small: 1e-6 on an ELU found
        # by the thorough profile), and an exact second one cannot be there (G is injective near z)
        inside = found & (dist < ri) & (dist > 1e-4 * ri)
        assert not inside.any(), f"another pre-image at {dist[inside].min():.3e} < radius {ri:.3e}"
        with torch.no_grad():
            moved = chain.output(z[i] + 0.9 * ri * dirs) - x[i]
        assert (moved.abs().amax(1) > 0).all(), "a step of 0.9 r left G(z) unchanged"


def test_invert_reports_inf_for_exact_the_local_radius_for_nonunique_and_zero_otherwise():
    """An expanding ReLU MLP: EXACT, radius inf. A last layer with fewer outputs than inputs, and
    more hidden units than the global MILP is run for: EXACT_NONUNIQUE with a positive radius. A
    point off the range: APPROXIMATE, 0. ``radius=False``: 0."""
    G = random_mlp([4, 30, 80], seed=3)
    z = latents(3, 4, seed=5)
    with torch.no_grad():
        x = G(z)
    r = gi.invert(G, x)
    assert all(s is gi.Status.EXACT for s in r.status) and torch.isinf(r.unique_radius).all()
    narrow = random_mlp([4, 40, 30], seed=3)  # 40 -> 30: the last layer's pre-image is never a point
    with torch.no_grad():
        y = narrow(z)
    r = gi.invert(narrow, y)
    assert all(s is gi.Status.EXACT_NONUNIQUE for s in r.status)
    assert (r.unique_radius > 0).all() and torch.isfinite(r.unique_radius).all()
    assert (gi.invert(narrow, y, radius=False).unique_radius == 0).all()
    assert (gi.invert(narrow, y, method=gi.Adam(steps=50)).unique_radius == 0).all()  # a baseline: as plain as it is
    off = gi.invert(narrow, y + 0.5 * torch.rand(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype))
    assert all(not s.solved for s in off.status) and (off.unique_radius == 0).all()


def test_a_mask_counts_only_the_observed_pixels():
    """The rows that pin z are the observed ones: with 2 of 20 pixels observed (fewer than the 4
    latents) nothing is proven; observing all gives the unmasked radius."""
    G = random_mlp([4, 30, 20], seed=3)
    z = latents(2, 4, seed=5)
    chain = gi.to_chain(G)
    few = torch.zeros(2, 20, dtype=torch.bool)
    few[:, :2] = True
    assert (unique_radius(chain, z, observed=few) == 0).all()
    torch.testing.assert_close(unique_radius(chain, z, observed=torch.ones(2, 20, dtype=torch.bool)),
                               unique_radius(chain, z))
    assert math.isfinite(unique_radius(chain, z)[0].item())


def test_a_float32_latent_is_cast_to_the_chains_precision():
    """Second reader's find: a float32 ``z`` met the float64 operators and raised; it is cast."""
    chain = gi.to_chain(random_mlp([4, 40, 30], seed=3))
    z = latents(3, 4, seed=5)
    torch.testing.assert_close(unique_radius(chain, z.float()), unique_radius(chain, z.float().double()))


def test_the_time_limit_stops_the_radius_between_layers_of_a_chunk():
    """``stop`` is asked before each chunk and after each layer's Jacobian: once it says so the
    chunk in hand is dropped (radius 0), never half-computed; asked never, every radius is proven."""
    chain = gi.to_chain(random_mlp([4, 40, 30, 60], seed=3))
    z = latents(3, 4, seed=5)
    full = unique_radius(chain, z)
    assert (full > 0).all()
    asked = []

    def stop_at(n):
        def stop():
            asked.append(1)
            return len(asked) > n
        return stop
    assert (unique_radius(chain, z, stop=stop_at(2)) == 0).all()  # the chunk, then its first layer: stopped at the second
    assert len(asked) == 3
    asked.clear()
    torch.testing.assert_close(unique_radius(chain, z, stop=stop_at(100)), full)
