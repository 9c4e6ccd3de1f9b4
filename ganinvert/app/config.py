"""A Hydra config turned into objects, the same way for the invert and the compare app: the
generator (a shipped one, the paper's decoder from ``../shared``, or a seeded random net), the
observations (generated ``x = G(z*)``, optionally noisy or partly observed, and real held-out
digits) and the inverters."""

from __future__ import annotations

import logging

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from ganinvert import models
from ganinvert.models.data import load_mnist
from ganinvert.models.reference import paper_decoder, reference_path

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
    if cfg.model.get("kind") == "reference":
        path = reference_path()
        if not path.exists():
            raise FileNotFoundError(f"model {cfg.model.name}: the paper's checkpoint is not at {path}; point "
                                    "GANINVERT_SHARED at the folder holding reference_nets/ (it is never shipped)")
        G = torch.nn.Sequential(paper_decoder(path), torch.nn.Unflatten(1, (1, 28, 28)))
        return G.eval(), G[0][0].in_features, (0.0, float("inf")), None
    m = models.load(cfg.model.name)
    enc = None if m.encoder is None else m.encoder.double()
    return m.generator.double().eval(), m.latent_dim, m.pixel_range, enc


def observations(cfg: DictConfig, G, latent_dim: int,
                 pixel_range) -> dict[str, tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]]:
    """Data set name -> ``(x, z*, mask)`` for ``cfg.data``: ``z*`` None for real digits, ``mask``
    (True where a pixel is observed, shared by the samples) None when every pixel is."""
    out = {}
    g = torch.Generator().manual_seed(DATA_SEED_OFFSET + cfg.seed)
    if "generated" in cfg.data:
        gen = cfg.data.generated
        z = torch.randn(gen.n, latent_dim, generator=g, dtype=torch.float64)
        with torch.no_grad():
            x = G(z)
        if gen.noise:
            x = x + gen.noise * _noise(gen.get("noise_dist", "gaussian"), x.shape, g)
        observed, mask = gen.get("observed", 1.0), None
        if not 0 < observed <= 1:
            raise ValueError(f"data.generated.observed={observed}: expected a share of pixels in (0, 1]")
        if observed < 1.0:  # random pixels, a share `observed` of them, the same for every sample (as
            keep = round(observed * x[0].numel())  # the paper's code keeps one set of indices), from a
            pick = torch.Generator().manual_seed(DATA_SEED_OFFSET + cfg.seed + 1)  # stream of their own
            order = torch.rand(x[0].numel(), generator=pick).argsort()
            mask = torch.zeros(x[0].numel(), dtype=torch.bool).index_fill_(0, order[:keep], True)
            mask = mask.reshape(x.shape[1:]).expand(x.shape)
        out["generated"] = (x, z, mask)
    if "mnist" in cfg.data and cfg.model.get("kind") != "random":
        x, _ = load_mnist(root=cfg.data.mnist.root, split="held_out",
                          pixel_range="tanh" if pixel_range[0] < 0 else "unit")
        pick = torch.linspace(0, len(x) - 1, min(cfg.data.mnist.n, len(x))).long()  # every class
        out["mnist"] = (x[pick].double(), None, None)
    return out


def _noise(dist: str, shape, g: torch.Generator) -> torch.Tensor:
    """Unit noise: ``gaussian`` (std 1) or ``uniform`` (on [-1, 1], so ``noise`` is its l_inf level)."""
    if dist == "gaussian":
        return torch.randn(shape, generator=g, dtype=torch.float64)
    if dist == "uniform":
        return 2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1
    raise ValueError(f"data.generated.noise_dist={dist!r}: expected 'gaussian' or 'uniform'")


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
