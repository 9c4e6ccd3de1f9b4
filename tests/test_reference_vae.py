"""The paper's trained decoder (a real checkpoint from outside): layer-wise success rate."""

import torch

import ganinvert as gi
from ganinvert import Status

from .conftest import rel_err


def test_reference_decoder_layerwise_rate_and_honesty(reference_decoder):
    z = torch.randn(1000, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = reference_decoder(z).detach()
    r = gi.invert(reference_decoder, x, method="layerwise")
    err = rel_err(r.z, z)
    exact = r.exact
    # the paper reports ~84% with per-layer LPs; every EXACT must really be z*
    assert 0.80 <= exact.float().mean() <= 0.92, r.counts()
    assert (err[exact] <= 1e-6).all()
    assert Status.FAILED not in r.status and Status.INVALID not in r.status
    # the rest are flagged honestly: not solved means the residual says so
    unsolved = ~r.solved
    assert (r.residual[unsolved] > 1e-6).all()
