"""A Hydra config turned into objects, the same way for the invert and the compare app: the
generator (a shipped one, the paper's decoder from ``../shared``, a seeded random net, or a
user's own class and state dict), the
observations (generated ``x = G(z*)``, optionally noisy or partly observed, and real held-out
digits) and the inverters."""

from __future__ import annotations

import logging
import math
import sys
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from ganinvert import models
from ganinvert.models.data import load_mnist
from ganinvert.models.reference import paper_decoder, reference_path
from ganinvert.models.registry import read_tensor_dict

from ..inverters import Inverter
from .images import image_files, read_images
from ..nets import random_mlp
from ..report import inspect

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
    if cfg.model.get("kind") == "user":
        return user_generator(cfg.model)
    m = models.load(cfg.model.name)  # a conditional one takes (z, labels): see n_classes
    enc = None if m.encoder is None else m.encoder.double()
    return m.generator.double().eval(), m.latent_dim, m.pixel_range, enc


def user_generator(model: DictConfig) -> tuple[torch.nn.Module, int, tuple[float, float], None]:
    """A user's generator: its class from ``model.generator`` (``_target_`` and the constructor's
    arguments), its weights from the plain state dict ``model.weights``; a latent that is not flat
    is reshaped from a flat one (the app draws flat latents)."""
    if model.get("search_path"):
        path = str(Path(model.search_path).expanduser().resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    G = instantiate(model.generator)
    if not isinstance(G, torch.nn.Module):
        raise TypeError(f"model.generator._target_={model.generator._target_}: Expected a torch.nn.Module class, "
                        f"Got: {type(G).__name__}")
    if model.get("weights"):
        path = _weights_path(str(model.weights))
        tensors = read_tensor_dict(path)
        prefix = model.get("prefix") or ""
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            G.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{path} does not fit {type(G).__name__}: {e}. Fix: check the constructor's arguments "
                             f"(model.generator) and model.prefix={prefix!r}") from None
    G = G.double().eval()
    shape = inspect(G, latent_shape=model.get("latent_shape")).in_shape
    if len(shape) > 1:
        G = torch.nn.Sequential(torch.nn.Unflatten(1, shape), G).eval()
    lo, hi = model.get("pixel_range", (-1.0, 1.0))
    return G, math.prod(shape), (float(lo), float(hi)), None


def _weights_path(spec: str) -> Path:
    """``model.weights``: a path, or ``package:file`` for a file inside an installed package."""
    if ":" in spec and not Path(spec).exists() and "/" not in spec.split(":", 1)[0]:
        package, name = spec.split(":", 1)
        path = Path(str(resources.files(package) / name))
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model.weights={spec}: no such file. Expected a state dict saved with "
                                "torch.save(G.state_dict(), path), or package:file")
    return path


class Observed(NamedTuple):
    """One data set: ``x``, the latents ``z*`` that drew it (None for real digits), ``mask`` (True
    where a pixel is observed, shared by the samples; None when every pixel is), ``cond``, a
    conditional generator's labels (None for the others), and ``files``, the image files ``x``
    was read from (``data=images``; None for the others)."""

    x: torch.Tensor
    z: torch.Tensor | None
    mask: torch.Tensor | None
    cond: torch.Tensor | None = None
    files: list[Path] | None = None


def n_classes(cfg: DictConfig) -> int:
    """The classes of a label-conditional shipped generator (it takes ``(z, labels)``), else 0."""
    spec = models.SPECS.get(cfg.model.name) if cfg.model.get("kind") in ("gan", "vae") else None
    return spec.n_classes if spec is not None else 0


def observations(cfg: DictConfig, G, latent_dim: int, pixel_range) -> dict[str, Observed]:
    """Data set name -> :class:`Observed` for ``cfg.data``. A conditional generator draws the
    generated digits under labels 0, 1, 2... in turn, and the real digits keep their own."""
    out = {}
    g = torch.Generator().manual_seed(DATA_SEED_OFFSET + cfg.seed)
    classes = n_classes(cfg)
    if "generated" in cfg.data:
        gen = cfg.data.generated
        z = torch.randn(gen.n, latent_dim, generator=g, dtype=torch.float64)
        y = torch.arange(gen.n) % classes if classes else None
        with torch.no_grad():
            x = G(z) if y is None else G(z, y)
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
        out["generated"] = Observed(x, z, mask, y)
    if "mnist" in cfg.data and cfg.model.get("kind") != "random":
        x, labels = load_mnist(root=cfg.data.mnist.root, split="held_out",
                               pixel_range="tanh" if pixel_range[0] < 0 else "unit")
        pick = torch.linspace(0, len(x) - 1, min(cfg.data.mnist.n, len(x))).long()  # every class
        out["mnist"] = Observed(x[pick].double(), None, None, labels[pick] if classes else None)
    if "images" in cfg.data:
        out["images"] = _images(cfg.data.images, G, latent_dim, pixel_range, classes)
    return out


def _images(spec: DictConfig, G, latent_dim: int, pixel_range, classes: int) -> Observed:
    """``data.images``: the folder's files as the generator draws images (:mod:`.images`)."""
    if classes and spec.get("label") is None:
        raise ValueError(f"this generator is conditional on {classes} classes: Expected data.images.label=<class> "
                         "(every image of the folder is inverted under it)")
    y = None if not classes else torch.full((1,), int(spec.label), dtype=torch.long)
    with torch.no_grad():  # the shape of what G draws
        shape = tuple((G(torch.zeros(1, latent_dim, dtype=torch.float64)) if y is None
                       else G(torch.zeros(1, latent_dim, dtype=torch.float64), y)).shape[1:])
    if len(shape) != 3:
        raise ValueError(f"the generator draws tensors of shape {shape}; Expected images (C, H, W) to read files into")
    files = image_files(spec.dir)
    x = read_images(files, shape=shape, pixel_range=pixel_range, fit=spec.get("fit", "crop"),
                    invert_colors=bool(spec.get("invert_colors", False)))
    return Observed(x, None, None, None if y is None else y.expand(len(files)).clone(), files)


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
