"""What invert certifies after the inverter returns (ganinvert.certificates)."""

import time

import torch

import ganinvert as gi
from ganinvert.budget import Budget
from ganinvert.certificates import certify_answers

from .conftest import latents, random_mlp


def test_a_used_up_time_limit_leaves_radius_zero_and_says_so():
    """When the solve used the whole time limit, solved answers keep radius 0 and their message says
    why (measured on the stress family: mlp_gan x2 at 1 s/sample had 13 solved, none with a radius)."""
    chain = gi.to_chain(random_mlp([4, 40, 30], seed=3))
    z = latents(2, 4, seed=5)
    with torch.no_grad():
        x = chain.output(z)
    status = [gi.Status.EXACT_NONUNIQUE, gi.Status.EXACT]
    messages, methods = ["pre-image of layer(s) [1] is not certified to be a single point", ""], ["a", "b"]
    budget = Budget(time_limit=1e-6)
    time.sleep(1e-3)
    r = certify_answers(chain, z, x, status, messages, methods, observed=None, rtol=1e-6, note="", budget=budget)
    assert r[0] == 0 and torch.isinf(r[1])
    assert messages[0].endswith("uniqueness radius not computed: time_limit=1e-06s was used up")
    assert messages[1] == "" and status[0] is gi.Status.EXACT_NONUNIQUE
