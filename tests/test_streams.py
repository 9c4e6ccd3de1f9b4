"""Random draws belong to the seed: a sample gets the same starts alone or anywhere in a batch,
and its answer stays continuous in x."""

import torch

import ganinvert as gi
from ganinvert.streams import SeedStream

from .conftest import latents, random_mlp


def test_draws_depend_on_the_seed_and_purpose_only():
    like = torch.zeros(1, dtype=torch.float32)
    a = SeedStream(7, "starts", like=like).randn(3, 4)
    assert a.dtype == torch.float32 and torch.equal(a, SeedStream(7, "starts", like=like).randn(3, 4))
    assert not torch.equal(a, SeedStream(8, "starts", like=like).randn(3, 4))  # the seed governs
    assert not torch.equal(a, SeedStream(7, "kicks", like=like).randn(3, 4))  # each purpose its own stream
    u = SeedStream(7, "box", like=like).rand(1000)
    assert (u >= 0).all() and (u < 1).all() and 0.45 < u.mean() < 0.55


def test_adam_gives_a_sample_the_same_fit_alone_and_in_a_batch():
    G = random_mlp((6, 12, 30), seed=3)
    x = G(latents(5, 6, seed=4)).detach()
    for adam in (gi.Adam(steps=50, restarts=3, seed=11), gi.Adam(steps=50, restarts=3, seed=11, box=1.0)):
        batch = gi.invert(G, x, method=adam).z
        alone = torch.cat([gi.invert(G, x[i:i + 1], method=adam).z for i in range(5)])
        torch.testing.assert_close(batch, alone, rtol=1e-9, atol=1e-12)
