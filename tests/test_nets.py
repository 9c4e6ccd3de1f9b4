import pytest
import torch

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
