import pytest
import torch

import ganinvert as gi
from ganinvert import Status

from ..conftest import latents, random_mlp


def test_adam_baseline_never_claims_uniqueness_and_is_seeded():
    G = random_mlp((5, 30, 90), seed=1)
    x = G(latents(8, 5)).detach()
    a = gi.invert(G, x, method=gi.Adam(steps=300, lr=0.05, seed=3))
    b = gi.invert(G, x, method=gi.Adam(steps=300, lr=0.05, seed=3))
    assert Status.EXACT not in a.status
    assert set(a.status) <= {Status.EXACT_NONUNIQUE, Status.APPROXIMATE}
    torch.testing.assert_close(a.z, b.z)  # same seed, same answer; the global RNG is not used


def test_adam_restarts_do_not_increase_the_residual():
    G = random_mlp((5, 30, 90), seed=2)
    x = G(latents(16, 5)).detach()
    one = gi.invert(G, x, method=gi.Adam(steps=100, restarts=1, seed=0))
    three = gi.invert(G, x, method=gi.Adam(steps=100, restarts=3, seed=0))
    assert (three.residual <= one.residual + 1e-12).all()


def test_adam_rejects_bad_options():
    with pytest.raises(gi.InvalidInputError, match="steps >= 1"):
        gi.Adam(steps=0)
