"""The default under deep output saturation (docs/design.md §3.7): the stress family (a shipped
GAN's last layer scaled by k) and the shipped generator trained to convergence. Every test checks
x = G(z*) reached, its share of deeply saturated pixels, and no false EXACT."""

import pytest
import torch
from torch import nn

import ganinvert as gi
from ganinvert import models

from ..conftest import latents, rel_err

DEEP = 1e-5


def _stressed(name: str, k: float) -> tuple[nn.Module, int]:
    m = models.load(name)
    G = m.generator.double().eval()
    last = [q for q in G.modules() if isinstance(q, (nn.Linear, nn.ConvTranspose2d))][-1]
    with torch.no_grad():
        last.weight.mul_(k)
        if last.bias is not None:
            last.bias.mul_(k)
    return G, m.latent_dim


def _check(G: nn.Module, z: torch.Tensor, *, deep_at_least: float, solved_at_least: int, time_limit: float):
    with torch.no_grad():
        x = G(z)
    assert ((1 - x.abs()) < DEEP).double().mean() >= deep_at_least  # the stress is real
    r = gi.invert(G, x, time_limit=time_limit)
    assert int((r.residual <= 1e-6).sum()) >= solved_at_least
    assert not (r.exact & (rel_err(r.z, z) > 1e-6)).any()
    return r


def test_the_tutorial_gan_with_its_last_layer_doubled_is_solved_below_its_pinned_layer():
    # 65% of the pixels are deep, yet 274 equations still pin h2 (256 units): LM on 64-256-256
    # against it solves every sample before any fit or LP (about 0.1 s/sample on 2 cores)
    G, k = _stressed("mlp_gan", 2.0)
    r = _check(G, latents(8, k, seed=1), deep_at_least=0.6, solved_at_least=8, time_limit=8.0)
    assert all("lm(layer-wise start)@2" in m for m in r.methods)
    assert all(s is gi.Status.EXACT_NONUNIQUE for s in r.status)  # the square layer is ambiguous


def test_a_dcgan_with_its_last_layer_doubled_is_solved_by_lm_from_the_creeping_fit():
    # dcgan_odd's last layer contracts (10816 -> 784): nothing is pinned, the pixel fit creeps
    # under saturation, and LM tried from the fit's point takes each sample into its basin
    G, k = _stressed("dcgan_odd", 2.0)
    r = _check(G, latents(8, k, seed=1), deep_at_least=0.2, solved_at_least=7, time_limit=16.0)
    assert sum("lbfgs>lm" in m for m in r.methods) >= 6


def test_a_float32_observation_of_a_saturated_dcgan_reaches_z_star_to_float32s_precision():
    # a float32 generator's x: its pixels 1e-7 from an end say only "saturated" (float32 resolves
    # 1 - |y| to 6e-8). Taken as equations, their atanh targets (off by up to 0.3) left the answers
    # at residual 2e-5 to 7e-5 and z off by 4e-4 to 5e-3; as one-sided rows, at float32's own error
    G = models.load("dcgan").generator.float().eval()
    last = [q for q in G.modules() if isinstance(q, nn.ConvTranspose2d)][-1]
    with torch.no_grad():
        last.weight.mul_(3)
    z = latents(4, 32, seed=7).float()
    with torch.no_grad():
        x = G(z)
    assert ((1 - x.abs()) < DEEP).double().mean() > 0.8
    r = gi.invert(G, x, time_limit=20)
    assert (r.residual <= 2e-6).all() and all(s.solved for s in r.status)
    assert (rel_err(r.z, z) < 1e-4).all()  # z*, to float32's precision: no other pre-image


def test_the_shipped_generator_trained_to_convergence_is_deeply_saturated_and_solved():
    m = models.load("mlp_gan_converged")
    G = m.generator.double().eval()
    with torch.no_grad():
        share = ((1 - G(latents(200, m.latent_dim, seed=9)).abs()) < DEEP).double().mean()
    assert share >= 0.3  # what users bring: >= 30% of pixels within 1e-5 of the range's ends
    _check(G, latents(8, m.latent_dim, seed=3), deep_at_least=0.25, solved_at_least=8, time_limit=16.0)


@pytest.mark.parametrize("early", [-0.1, float("nan")])
def test_the_early_lm_options_are_validated(early):
    with pytest.raises(gi.InvalidInputError, match="early >= 0"):
        gi.Auto(early=early)
    with pytest.raises(gi.InvalidInputError, match="early_steps >= 1"):
        gi.Auto(early_steps=0)
