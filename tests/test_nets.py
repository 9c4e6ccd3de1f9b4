import pytest
import torch

import ganinvert as gi
from ganinvert import nets


def test_random_mlp_is_seeded_privately_and_scaled_per_row():
    torch.manual_seed(123)
    a = nets.random_mlp((20, 400), seed=5)
    state = torch.random.get_rng_state()
    b = nets.random_mlp((20, 400), seed=5)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched
    torch.testing.assert_close(a[0].weight, b[0].weight)
    # rows N(0, 1/n): the squared entries average 1/n
    assert abs(a[0].weight.square().mean().item() * 400 - 1.0) < 0.05
    assert not a.training


def test_random_mlp_rejects_unknown_activations():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        nets.random_mlp((2, 4), act="gelu")


def test_random_dcgan64_is_the_standard_layout_seeded_and_convertible():
    from ganinvert.nets import random_dcgan64
    a, b = random_dcgan64(seed=3, ngf=8), random_dcgan64(seed=3, ngf=8)
    z = torch.randn(2, 100, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        xa, xb = a(z), b(z)
    assert xa.shape == (2, 3, 64, 64) and torch.equal(xa, xb)
    chain = gi.to_chain(a)
    assert [layer.op.out_dim for layer in chain.layers] == [64 * 16, 32 * 64, 16 * 256, 8 * 1024, 3 * 4096]
    assert not a.training
