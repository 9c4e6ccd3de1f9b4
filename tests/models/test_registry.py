import json

import pytest
import torch
from torch import nn

import ganinvert as gi
from ganinvert import models
from ganinvert.adapters import Conditioned
from ganinvert.models.registry import HERE, SPECS, checkpoint_path, read_tensor_dict, sha256

def _of_z(generator: nn.Module, n_classes: int) -> nn.Module:
    """A generator of z alone: a label-conditional one with label 3 fixed."""
    return Conditioned(generator, (torch.tensor([3]),)) if n_classes else generator


MANIFEST = json.loads((HERE / "manifest.json").read_text()) if (HERE / "manifest.json").exists() else {}
SHIPPED = list(SPECS)


def test_every_architecture_ships_a_checkpoint_card_and_sample_grid():
    for name in SPECS:
        assert checkpoint_path(name).exists(), f"models/{name}.pt missing"
        assert (HERE / f"{name}.md").exists() and (HERE / f"{name}.png").exists()
        assert checkpoint_path(name).stat().st_size < 5e6  # a few MB at most
        assert name in MANIFEST and 0.0 <= MANIFEST[name]["layerwise"]["exact"] <= 1.0


@pytest.mark.parametrize("name", list(SPECS))
def test_save_then_load_gives_the_same_eval_mode_generator(name, tmp_path):
    generator, critic = models.build(name)
    generator.eval()
    path = models.save(name, generator, critic if SPECS[name].kind == "vae" else None, path=tmp_path / "ck.pt")
    m = models.load(name, path=path)
    G, want = _of_z(m.generator, m.n_classes), _of_z(generator, m.n_classes)
    assert not m.generator.training and gi.to_chain(G).in_dim == m.latent_dim  # the latent it takes
    z = torch.randn(5, m.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(G(z), want(z))
    assert all(isinstance(v, torch.Tensor) for v in read_tensor_dict(path).values())


@pytest.mark.parametrize("name", SHIPPED)
def test_checkpoint_matches_its_sha256_in_manifest_and_card(name):
    digest = sha256(checkpoint_path(name))
    assert MANIFEST[name]["sha256"] == digest
    assert digest in (HERE / f"{name}.md").read_text()


@pytest.mark.parametrize("name", list(SPECS))
def test_shipped_checkpoint_loads_and_round_trips_through_to_chain(name):
    m = models.load(name)
    G = _of_z(m.generator, m.n_classes)
    assert not m.generator.training and gi.to_chain(G).in_dim == m.latent_dim  # the latent it takes
    z = torch.randn(6, m.latent_dim, generator=torch.Generator().manual_seed(0))
    chain = gi.to_chain(G, latent_shape=(m.latent_dim,))
    with torch.no_grad():
        want = G(z).double()
    torch.testing.assert_close(chain(z.double()), want, rtol=1e-4, atol=1e-4)
    lo, hi = m.pixel_range
    if SPECS[name].kind == "gan":  # GAN outputs end in Tanh / Sigmoid: inside the data range
        assert want.min() >= lo and want.max() <= hi
    assert (m.encoder is not None) == (SPECS[name].kind == "vae")


def test_a_pickled_module_is_refused(tmp_path):
    path = tmp_path / "whole_module.pt"
    torch.save(nn.Linear(2, 2), path)
    with pytest.raises(ValueError, match="not a plain tensor checkpoint"):
        read_tensor_dict(path)


def test_a_dict_with_non_tensors_is_refused(tmp_path):
    path = tmp_path / "mixed.pt"
    torch.save({"weight": torch.zeros(2), "epoch": 3}, path)
    with pytest.raises(ValueError, match="Expected a flat dict of tensors"):
        read_tensor_dict(path)


def test_unknown_model_name_lists_the_choices():
    with pytest.raises(KeyError, match="mnist_mlp"):
        models.load("stylegan")
