"""A Hydra config turned into objects, the same way for the invert and the compare app: the
generator (a shipped one or a seeded random net), the observations (generated ``x = G(z*)``
and real held-out digits) and the inverters."""

from __future__ import annotations

import logging

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from ganinvert import models
from ganinvert.models.data import load_mnist

from ..inverters import Inverter
from ..nets import random_mlp

log = logging.getLogger(__name__)

#: the observations' latents come from a stream of their own: inverters seeded with ``cfg.seed``
#: must not start from the z* it drew
DATA_SEED_OFFSET = 1_000_003


def build_generator(cfg: DictConfig) -> tuple[torch.nn.Module, int, tuple[float, float], torch.nn.Module | None]:
    """(generator in float64, latent dim, pixel range, encoder or None) for ``cfg.model``."""
    if cfg.model.get("kind") == "random":
        dims = (cfg.model.latent_dim, *cfg.model.widths)
        G = random_mlp(dims, act=cfg.model.act, seed=cfg.model.seed)
        view = torch.nn.Unflatten(1, (1, 1, dims[-1]))  # image-shaped output, like the shipped ones
        return torch.nn.Sequential(G, view).eval(), cfg.model.latent_dim, (0.0, float("inf")), None
    m = models.load(cfg.model.name)
    enc = None if m.encoder is None else m.encoder.double()
    return m.generator.double().eval(), m.latent_dim, m.pixel_range, enc


def observations(cfg: DictConfig, G, latent_dim: int,
                 pixel_range) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """Data set name -> ``(x, z*)`` (``z*`` None for real digits) for ``cfg.data``."""
    out = {}
    g = torch.Generator().manual_seed(DATA_SEED_OFFSET + cfg.seed)
    if "generated" in cfg.data:
        z = torch.randn(cfg.data.generated.n, latent_dim, generator=g, dtype=torch.float64)
        with torch.no_grad():
            x = G(z)
        if cfg.data.generated.noise:
            x = x + cfg.data.generated.noise * torch.randn(x.shape, generator=g, dtype=torch.float64)
        out["generated"] = (x, z)
    if "mnist" in cfg.data and cfg.model.get("kind") != "random":
        x, _ = load_mnist(root=cfg.data.mnist.root, split="held_out",
                          pixel_range="tanh" if pixel_range[0] < 0 else "unit")
        pick = torch.linspace(0, len(x) - 1, min(cfg.data.mnist.n, len(x))).long()  # every class
        out["mnist"] = (x[pick].double(), None)
    return out


def inverters(cfg: DictConfig, encoder: torch.nn.Module | None) -> dict[str, Inverter]:
    """Name -> inverter for ``cfg.inverter``; ``encoder`` is skipped (with a warning) for models
    that ship none."""
    invs = {}
    for name, node in cfg.inverter.items():
        if name == "encoder":
            if encoder is None:
                log.warning("model %s ships no encoder: inverter 'encoder' skipped", cfg.model.name)
                continue
            invs[name] = instantiate(node)(encoder=encoder)
        else:
            invs[name] = instantiate(node)
    return invs
