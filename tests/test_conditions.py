"""Conditional generators ``G(z, *cond)``: split by condition, the condition's values constants of
the chain, and which candidate condition explains an image."""

import pytest
import torch
from torch import nn

import ganinvert as gi

from .conftest import latents


class CondMLP(nn.Module):
    """As the popular collections write a label-conditional GAN: the label's embedding
    concatenated with the noise."""

    def __init__(self, nz=12, classes=4, act=None):
        super().__init__()
        self.label_emb = nn.Embedding(classes, classes)
        self.model = nn.Sequential(nn.Linear(nz + classes, 48), act or nn.LeakyReLU(0.2), nn.Linear(48, 120),
                                   act or nn.LeakyReLU(0.2), nn.Linear(120, 256), nn.Tanh())

    def forward(self, noise, labels):
        return self.model(torch.cat((self.label_emb(labels), noise), -1)).view(noise.size(0), 1, 16, 16)


class ACGANish(nn.Module):
    """The noise multiplied by the label's embedding (ACGAN), then a DCGAN-like stack."""

    def __init__(self, nz=6, classes=3):
        super().__init__()
        self.emb = nn.Embedding(classes, nz)
        self.l1 = nn.Linear(nz, 8 * 4 * 4)
        self.conv = nn.Sequential(nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2), nn.Conv2d(8, 4, 3, padding=1),
                                  nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, padding=1), nn.Tanh())

    def forward(self, z, labels):
        return self.conv(self.l1(torch.mul(self.emb(labels), z)).view(-1, 8, 4, 4))


def _net(cls, seed=0, **kw):
    torch.manual_seed(seed)
    return cls(**kw).double().eval()


def test_each_sample_is_inverted_exactly_under_its_own_label():
    G = _net(CondMLP)
    y = torch.tensor([2, 0, 2, 3, 1, 0])
    z = latents(6, 12, seed=1)
    r = gi.invert(G, G(z, y).detach(), cond=y)
    assert [s.name for s in r.status] == ["EXACT"] * 6, r.messages
    torch.testing.assert_close(r.z, z, rtol=0, atol=1e-8)


def test_a_condition_that_multiplies_the_latent_is_a_constant_scale():
    G = _net(ACGANish, seed=1)
    y = torch.tensor([1, 2, 1])
    z = latents(3, 6, seed=2)
    x = G(z, y).detach()
    r = gi.invert(G, x, cond=y, time_limit=60)
    assert all(s.solved for s in r.status), r.messages
    assert float(r.residual.max()) <= 1e-6


def test_one_condition_row_holds_for_the_whole_batch():
    G = _net(CondMLP)
    z = latents(3, 12, seed=3)
    x = G(z, torch.tensor([1, 1, 1])).detach()
    r = gi.invert(G, x, cond=torch.tensor([1]))
    assert r.exact.all()
    one = gi.invert(G, x[0], cond=torch.tensor(1))  # one image, one condition, no batch dimensions
    assert not one.batched and one.z.shape == (12,) and one.status[0].name == "EXACT"


def test_a_callable_closing_over_per_sample_labels_is_pointed_to_cond():
    G = _net(CondMLP)
    y = torch.tensor([0, 1, 2, 3, 0])
    x = G(latents(5, 12), y).detach()
    with pytest.raises(gi.InvalidInputError, match=r"closes over per-sample tensors \(y \(5,\)\).*cond="):
        gi.invert(lambda z: G(z, y), x)


def test_a_condition_with_the_wrong_rows_says_what_was_expected():
    G = _net(CondMLP)
    x = G(latents(4, 12), torch.tensor([0, 1, 2, 3])).detach()
    with pytest.raises(gi.InvalidInputError, match=r"4 rows like x.*Got: shapes \[\(3,\)\]"):
        gi.invert(G, x, cond=torch.tensor([0, 1, 2]))


def test_the_candidate_conditions_name_the_label_that_explains_each_image():
    G = _net(CondMLP, seed=2)
    y = torch.tensor([3, 0, 1])
    x = G(latents(3, 12, seed=5), y).detach()
    c = gi.invert_conditions(G, x, torch.arange(4))
    assert c.admits.shape == (3, 4)
    assert torch.equal(c.best, y)
    assert torch.equal(c.admits, nn.functional.one_hot(y, 4).bool())  # the others are certified non-solutions
    assert "3 explained by exactly one" in c.summary()


def test_a_conditional_black_box_is_searched_and_never_certified():
    G = _net(CondMLP, act=nn.SiLU())
    y = torch.tensor([0, 3])
    x = G(latents(2, 12, seed=6), y).detach()
    r = gi.invert(G, x, cond=y, method="adam", time_limit=10)
    assert not r.exact.any()  # G(z) = x may be reached, never certified unique
    assert all("not certifiable: module 'generator.model.1' of type SiLU" in m for m in r.messages)
