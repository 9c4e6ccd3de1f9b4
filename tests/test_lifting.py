"""Graphs that are not chains (residual blocks, concatenations, constants) become chains, and
the exact engine inverts them."""

import pytest
import torch
from torch import nn

import ganinvert as gi
from ganinvert import activations as acts

from .conftest import latents


def _seeded(module: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    for p in module.parameters():
        nn.init.normal_(p, std=1.0 / max(1, p.shape[-1]) ** 0.5)
    return module.double().eval()


class ResidualMLP(nn.Module):
    """z -> h = relu(a z) -> h + relu(b h) -> relu(c .): a residual block between two layers."""

    def __init__(self, k=5, n=30, m=120):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(k, n), nn.Linear(n, n), nn.Linear(n, m)

    def forward(self, z):
        h = torch.relu(self.a(z))
        return torch.relu(self.c(h + torch.relu(self.b(h))))


def test_a_residual_block_carries_its_input_beside_the_branch():
    G = _seeded(ResidualMLP(), 0)
    chain = gi.to_chain(G)  # the chain check compares chain(z) with G(z)
    assert [layer.act for layer in chain.layers] == [
        acts.ReLU(), acts.Parallel([(acts.ReLU(), 30), (acts.Identity(), 30)]), acts.ReLU()]
    z = latents(6, 5, seed=3)
    torch.testing.assert_close(chain(z), G(z), rtol=1e-12, atol=1e-12)


def test_a_residual_generator_is_inverted_exactly():
    G = _seeded(ResidualMLP(), 1)
    z = latents(6, 5, seed=4)
    r = gi.invert(G, G(z).detach())
    assert all(s.solved for s in r.status), r.messages
    assert float(r.residual.max()) <= 1e-9
    assert torch.allclose(r.z[r.exact], z[r.exact], atol=1e-7)


def test_concatenation_along_channels_is_a_stack():
    class Cat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 32), nn.Linear(4, 16)

        def forward(self, z):
            h = torch.cat([torch.relu(self.a(z)).view(-1, 2, 4, 4), self.b(z).view(-1, 1, 4, 4)], 1)
            return torch.tanh(nn.functional.avg_pool2d(h, 2).flatten(1) * 0.5 - 1.0)

    G = _seeded(Cat(), 2)
    chain = gi.to_chain(G)
    z = latents(4, 4, seed=5)
    torch.testing.assert_close(chain(z), G(z), rtol=1e-12, atol=1e-12)


def test_constants_fold_into_the_bias():
    class Consts(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 12)
            self.shift = nn.Parameter(torch.linspace(-1, 1, 12))

        def forward(self, z):
            h = 1.0 - (self.a(z) / 4 + self.shift) * 2.0  # sub, div, a parameter read directly, mul
            return torch.relu(-h)

    G = _seeded(Consts(), 3)
    chain = gi.to_chain(G)
    assert len(chain) == 1 and chain.layers[0].act == acts.ReLU()
    z = latents(5, 3, seed=6)
    torch.testing.assert_close(chain(z), G(z), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("body, why", [
    (lambda self, z: torch.relu(self.a(z)) * self.a(z), "multiplies two values computed from z"),
    (lambda self, z: self.a(z) + torch.randn_like(self.a(z)), "randn_like"),
])
def test_what_is_not_linear_is_refused_with_its_reason_and_inverted_as_a_black_box(body, why):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 8)

        forward = body

    G = _seeded(Net(), 4)
    with pytest.raises(gi.UnsupportedLayerError, match=why):
        gi.to_chain(G)
    assert why in gi.inspect(G).not_converted


class EqualConv(nn.Conv2d):
    """Equalized learning rate (PGGAN): the input scaled by a constant in a forward of its own."""

    def forward(self, x):
        return super().forward(x * (2 / (self.in_channels * self.kernel_size[0] ** 2)) ** 0.5)


class EqualLinear(nn.Linear):
    def forward(self, x):
        return nn.functional.linear(x, self.weight * 0.1, self.bias)


def test_a_layer_subclass_with_its_own_forward_is_traced_through_not_taken_for_its_base():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = EqualLinear(4, 32), EqualConv(2, 3, 3, padding=1)

        def forward(self, z):
            h = nn.LeakyReLU(0.2)(self.a(z))  # a module built inside forward: traced through too
            return torch.tanh(self.b(h.view(-1, 2, 4, 4)))

    G = _seeded(Net(), 5)
    chain = gi.to_chain(G)
    z = latents(3, 4, seed=7)
    # 1e-13: the constants (0.1, sqrt(2/18)) are float64, not rounded to float32 on the way
    torch.testing.assert_close(chain(z), G(z), rtol=1e-13, atol=1e-13)
    assert [layer.act for layer in chain.layers] == [acts.LeakyReLU(0.2), acts.Tanh()]


def test_a_second_required_argument_points_to_cond():
    class Cond(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 8)

        def forward(self, z, labels):
            return self.a(z) + labels[:, None]

    with pytest.raises(gi.ShapeMismatchError, match=r"missing 1 required positional argument: 'labels'.*cond="):
        gi.to_chain(_seeded(Cond(), 6), latent_shape=(3,))
