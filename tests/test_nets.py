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


def test_paper_decoder_refuses_a_foreign_state_dict(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc1.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(KeyError, match=r"lacks \['fc3.weight', 'fc4.weight'\]"):
        nets.paper_decoder(path)


def test_paper_decoder_shapes(reference_decoder):
    z = torch.zeros(3, 20, dtype=torch.float64)
    assert reference_decoder(z).shape == (3, 784)
