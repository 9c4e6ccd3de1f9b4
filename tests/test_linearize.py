"""The chain's linearisation: on the activation region of z the chain is affine in z, with the
Jacobian ``linearize`` builds; only chains with piecewise-linear hidden layers have regions."""

import torch

import ganinvert as gi
from ganinvert.linearize import linearize, piecewise_linear

from .conftest import latents, random_mlp


def test_piecewise_linear_only_with_piecewise_linear_hidden_layers():
    assert piecewise_linear(gi.to_chain(random_mlp([4, 20, 50], out_act="tanh")))
    assert not piecewise_linear(gi.to_chain(random_mlp([4, 20, 50], act="tanh")))


def test_the_jacobian_is_the_chains_own_inside_the_region():
    chain = gi.to_chain(random_mlp([5, 30, 60], act="leaky", out_act="tanh"))
    z = latents(4, 5, seed=1)
    p, J = linearize(chain, z)
    torch.testing.assert_close(p, chain.walk(z)[-1].pre)
    for i in range(4):
        ref = torch.autograd.functional.jacobian(lambda v: chain.walk(v[None])[-1].pre[0], z[i])
        torch.testing.assert_close(J[i], ref)
    # float32 Jacobians from a float32 copy: the pre-activation still the float64 chain's
    p32, J32 = linearize(chain, z, jacobian_chain=chain.to(dtype=torch.float32))
    torch.testing.assert_close(p32, p, rtol=0, atol=0)
    torch.testing.assert_close(J32, J, rtol=1e-5, atol=1e-5)


def test_below_the_last_layer_its_operator_times_the_input_jacobian_is_the_whole_jacobian():
    chain = gi.to_chain(random_mlp([5, 12, 30, 120], act="leaky", out_act="relu", seed=3))
    z = latents(4, 5, seed=2)
    p, J = linearize(chain, z)
    p2, Jh, h = linearize(chain, z, below_last=True)
    torch.testing.assert_close(p2, p, rtol=0, atol=0)
    torch.testing.assert_close(h, chain.walk(z)[-2].out, rtol=0, atol=0)  # the last layer's input
    assert Jh.shape == (4, 30, 5)
    torch.testing.assert_close(chain.layers[-1].op.dense() @ Jh, J, rtol=1e-12, atol=1e-12)
    one = gi.to_chain(random_mlp([5, 40], out_act="relu", seed=3))  # no layer below: h = z, J = I
    _, Jh1, h1 = linearize(one, z, below_last=True)
    assert torch.equal(h1, z) and torch.equal(Jh1, torch.eye(5, dtype=z.dtype).expand(4, 5, 5))
