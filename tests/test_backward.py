"""The one backward pass: last layer first, each step's inputs the next layer's targets,
stopped samples end with a zero latent, known targets per layer, one dense matrix per layer."""

import torch

import ganinvert as gi
from ganinvert.backward import BackwardPass

from .conftest import latents, random_mlp


def test_exact_steps_walk_back_to_the_latent_and_stopped_samples_get_zero():
    G = random_mlp([4, 12, 40], act="leaky", out_act="leaky", seed=0)  # bijective layers: lstsq is exact
    chain = gi.to_chain(G)
    z = latents(5, 4)
    with torch.no_grad():
        x = chain.forward_all(z)[-1]
    seen = []

    def step(i, A, y, rows):
        seen.append((i, tuple(A.shape), rows.tolist()))
        layer = chain.layers[i]
        p = layer.act.bounds(y, tol=torch.zeros(y.shape[0], 1, dtype=y.dtype)).lo  # invert the activation
        u = torch.linalg.lstsq(A, (p - layer.bias).T).solution.T
        return u, torch.tensor([r != 2 for r in rows.tolist()])  # sample 2 stops at the last layer

    zz = BackwardPass(chain).run(x, step)
    assert seen == [(1, (40, 12), [0, 1, 2, 3, 4]), (0, (12, 4), [0, 1, 3, 4])]
    torch.testing.assert_close(zz[[0, 1, 3, 4]], z[[0, 1, 3, 4]], rtol=0, atol=1e-9)
    assert not zz[2].any()


def test_known_targets_give_every_layer_its_own_and_dense_is_built_once():
    chain = gi.to_chain(random_mlp([3, 10, 30], seed=1))
    z = latents(2, 3)
    outs = chain.forward_all(z)
    walk, got = BackwardPass(chain), {}

    def step(i, A, y, rows):
        got[i] = y
        assert walk.dense(i) is A  # cached: the same matrix
        return torch.zeros(y.shape[0], A.shape[1], dtype=y.dtype), torch.zeros(len(rows), dtype=torch.bool)

    # a step that stops every sample ends the pass, with zero latents
    assert not walk.run(outs[-1], step, targets=outs).any()
    assert list(got) == [1] and torch.equal(got[1], outs[1])
    got.clear()
    walk.run(outs[-1], lambda i, A, y, rows: (step(i, A, y, rows)[0], torch.ones(len(rows), dtype=torch.bool)),
             targets=outs)
    assert list(got) == [1, 0] and torch.equal(got[0], outs[0])  # layer 0's target is G's first layer output
