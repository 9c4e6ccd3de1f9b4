"""Global uniqueness by the MILP over hidden units' branches (ganinvert.lp.milp, design §3.9):
a known second pre-image found, agreement with enumerating every pattern by LP on small nets,
and what invert() makes of it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import event, given, note
from hypothesis import strategies as st
from scipy.optimize import linprog
from torch import nn

import ganinvert as gi
from ganinvert.lp.milp import MAX_UNITS, certify_global, why_not
from ganinvert.radius import unique_radius

from ..conftest import latents, random_mlp
from ..test_radius import _abs_net


def test_the_milp_finds_the_other_pre_image_of_abs():
    """``G(z) = |z|`` at z = 2: the witness is -2, at distance 4."""
    z = torch.tensor([[2.0]], dtype=torch.float64)
    v = certify_global(gi.to_chain(_abs_net()), z, z.abs(), rtol=1e-9)
    assert not v.unique[0]
    torch.testing.assert_close(v.witness, torch.tensor([[-2.0]], dtype=torch.float64), rtol=1e-7, atol=1e-7)
    assert "another pre-image at distance 4" in v.messages[0]


def _other_pattern_preimage(A, b, y, pattern):
    """Enumerate every on/off pattern of a one-hidden-layer ReLU net ``y = relu(A2 relu(A1 z + b1)
    + b2)`` other than ``pattern``: an LP per pattern (its region, the positive rows as equations,
    the zero rows as <= 0). Returns the first other pre-image found, or None."""
    (A1, A2), (b1, b2) = A, b
    pos = y > 0
    for bits in itertools.product([False, True], repeat=A1.shape[0]):
        s = np.array(bits)
        if (s == pattern).all():
            continue
        M = A2 * s  # the output's map on this pattern: A2 D_s (A1 z + b1) + b2
        out, out_b = M @ A1, M @ b1 + b2
        sign = np.where(s, -1.0, 1.0)[:, None]  # on: A1 z + b1 >= 0; off: <= 0
        A_ub = np.vstack([sign * A1, out[~pos]])
        b_ub = np.r_[-(sign[:, 0] * b1), -out_b[~pos]]
        r = linprog(np.zeros(A1.shape[1]), A_ub=A_ub, b_ub=b_ub, A_eq=out[pos], b_eq=y[pos] - out_b[pos],
                    bounds=[(None, None)] * A1.shape[1], method="highs")
        if r.status == 0:
            return r.x
    return None


@given(k=st.integers(1, 3), hidden=st.integers(2, 7), n=st.integers(3, 12), seed=st.integers(0, 2**31 - 1))
def test_the_milp_agrees_with_enumerating_every_pattern(k, hidden, n, seed):
    """On small ReLU nets (every pattern enumerable): the MILP says unique exactly when no other
    pattern's LP has a pre-image (up to its scale floor), and a witness it names is one."""
    net = random_mlp([k, hidden, n], seed=seed, out_act="relu")
    chain = gi.to_chain(net)
    z = latents(1, k, seed=seed % 1000)
    if not unique_radius(chain, z)[0] > 0:
        event("region not injective: not asked")
        return
    with torch.no_grad():
        v = certify_global(chain, z, chain.output(z), rtol=1e-9)
    A = [layer.op.dense().numpy() for layer in chain.layers]
    b = [layer.bias.numpy() for layer in chain.layers]
    steps = chain.walk(z)
    other = _other_pattern_preimage(A, b, steps[-1].out[0].numpy(), steps[0].pattern[0].numpy())
    note(f"MILP: {v.messages[0]}; enumeration: {other}")
    if v.unique[0]:
        event("unique")
        assert other is None, f"the MILP missed the pre-image {other}"
    elif not torch.isnan(v.witness[0, 0]):
        event("witness")
        assert other is not None
        with torch.no_grad():
            again = chain.output(v.witness)
        torch.testing.assert_close(again, steps[-1].out, rtol=1e-6, atol=1e-8)
    else:
        event("unresolved")


def test_invert_makes_a_small_contracting_relu_net_exact_and_z_is_z_star():
    """3 -> 12 -> 8 -> 40: the 12 -> 8 layer never pins its input, so the layer-wise certificate
    fails; the MILP over the 20 hidden units proves z the only pre-image: EXACT, z = z*."""
    G = random_mlp([3, 12, 8, 40], seed=1, out_act="relu")
    z = latents(4, 3, seed=6)
    with torch.no_grad():
        x = G(z)
    r = gi.invert(G, x)
    exact = r.exact
    assert exact.all(), r.messages
    assert all(m.endswith(">milp") for m in r.methods)
    assert torch.isinf(r.unique_radius[exact]).all()
    assert ((r.z[exact] - z[exact]).norm(dim=1) <= 1e-6 * z[exact].norm(dim=1)).all()
    assert all(s is not gi.Status.EXACT for s in gi.invert(G, x, radius=False).status)


def test_no_time_left_gives_no_certificate_and_says_so():
    chain = gi.to_chain(random_mlp([3, 8, 12], seed=1, out_act="relu"))
    z = latents(2, 3)
    with torch.no_grad():
        v = certify_global(chain, z, chain.output(z), rtol=1e-6, left=lambda: 0.0)
    assert not v.unique.any() and v.messages == ["no global certificate: out of time"] * 2


def _chain(W1, b1, W2):
    """``Identity(W2 relu(W1 z + b1))`` as a chain, from nested lists."""
    from ganinvert.activations import Identity, ReLU
    from ganinvert.chain import Chain, Layer
    from ganinvert.operators import Dense
    d = torch.float64
    W1, b1, W2 = (torch.tensor(v, dtype=d) for v in (W1, b1, W2))
    return Chain((Layer(Dense(W1), b1, ReLU(), (W1.shape[0],)),
                  Layer(Dense(W2), torch.zeros(W2.shape[0], dtype=d), Identity(), (W2.shape[0],))), (W1.shape[1],))


def test_a_pre_image_far_out_is_never_certified_away():
    """Second reader's counterexample: G(0.5) = G(1000.5), the other pre-image's hidden units sum to
    ~2000 times z's. A scale floor alone would have called z = 0.5 EXACT; the MILP looks at every
    scale, so the answer is never EXACT (found or left unresolved)."""
    chain = _chain([[1.0], [1.0], [1.0], [-1.0]], [0.0, -1.0, -1000.0, 0.0], [[1.0, -1.0, -1.0, 0.0], [0, 0, 0, 1.0]])
    z = torch.tensor([[0.5]], dtype=torch.float64)
    with torch.no_grad():
        x = chain.output(z)
        torch.testing.assert_close(chain.output(torch.tensor([[1000.5]], dtype=torch.float64)), x)
    assert not certify_global(chain, z, x, rtol=1e-9).unique.any()
    assert gi.invert(chain, x).status[0] is not gi.Status.EXACT


def test_the_milp_certifies_x_not_just_g_of_z():
    """Second reader's counterexample: x = (2, 2) = G(2) = G(-2). An answer z = 2 + 1e-5 reproduces
    x only to tolerance (float32's rtol), and G(z) itself has one pre-image; the MILP works on x's
    rows widened by that tolerance, so it finds -2."""
    chain = _chain([[1.0], [-1.0], [-1.0]], [0.0, 0.0, -1.0], [[1.0, 1.0, 0.0], [1.0, 0.0, 2.0]])
    x = torch.tensor([[2.0, 2.0]], dtype=torch.float64)
    v = certify_global(chain, torch.tensor([[2.0 + 1e-5]], dtype=torch.float64), x, rtol=1e-4)
    assert not v.unique[0]
    torch.testing.assert_close(v.witness, torch.tensor([[-2.0]], dtype=torch.float64), rtol=1e-3, atol=1e-3)


def test_what_the_milp_is_not_run_for():
    assert "over the" in why_not(gi.to_chain(random_mlp([4, 40, 60], seed=0))) and MAX_UNITS < 40
    assert "not ReLU" in why_not(gi.to_chain(random_mlp([4, 8, 20], act="leaky", seed=0)))
    assert why_not(gi.to_chain(nn.Sequential(nn.Linear(3, 8)).double())).startswith("a single layer")


def test_milp_seconds_runs_the_milp_past_the_default_gate():
    """A 3-24-16-60 ReLU net (40 hidden units, over the default's 32): EXACT_NONUNIQUE by default;
    with ``milp_seconds`` the MILP runs and proves the answers unique (z = z*)."""
    G = random_mlp([3, 24, 16, 60], seed=1, out_act="relu")
    z = latents(2, 3, seed=6)
    with torch.no_grad():
        x = G(z)
    assert not gi.invert(G, x).exact.any()
    r = gi.invert(G, x, milp_seconds=20)
    assert r.exact.all(), r.messages
    assert ((r.z - z).norm(dim=1) <= 1e-6 * z.norm(dim=1)).all()


def test_milp_seconds_must_be_positive_seconds():
    G = random_mlp([3, 8, 12], seed=1)
    x = torch.rand(1, 12, dtype=torch.float64)
    for bad in (0, -1.0, float("inf"), True, "2"):
        with pytest.raises(gi.InvalidInputError, match="milp_seconds as seconds > 0"):
            gi.invert(G, x, milp_seconds=bad)
