"""The shipped generators by name, and loading them safely.

Checkpoints are flat dicts of tensors (``generator.*`` and, for VAEs, ``encoder.*``) saved with
``torch.save`` and read with ``weights_only=True``; anything else is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

import torch
from torch import nn

from . import architectures as arch

HERE = Path(__file__).resolve().parent


#: the data ranges the shipped generators were trained on, by ``pixel_range`` name
RANGES = MappingProxyType({"unit": (0.0, 1.0), "tanh": (-1.0, 1.0)})


@dataclass(frozen=True)
class Spec:
    """How to build one shipped model. ``pixel_range`` is the data range it was trained on."""

    name: str
    kind: str  # "gan" or "vae"
    latent_dim: int
    pixel_range: str  # "unit" ([0, 1]) or "tanh" ([-1, 1])
    generator: Callable[[], nn.Module]
    critic: Callable[[], nn.Module]  # discriminator (GAN) or encoder (VAE)
    n_classes: int = 0  # a label-conditional generator's classes: generator(z, labels); 0 for G(z)


SPECS: Mapping[str, Spec] = MappingProxyType({s.name: s for s in (
    Spec("mnist_mlp", "gan", 20, "unit", lambda: arch.MLPGenerator(20, (128, 256)), arch.MLPDiscriminator),
    Spec("mnist_mlp_leaky", "gan", 64, "tanh", lambda: arch.LeakyMLPGenerator(64, (128, 256, 512)),
         arch.MLPDiscriminator),
    Spec("dcgan", "gan", 32, "tanh", lambda: arch.DCGANGenerator(32, 32), arch.DCGANDiscriminator),
    Spec("mlp_gan", "gan", 64, "tanh", lambda: arch.TutorialMLPGenerator(64, 256), arch.MLPDiscriminator),
    Spec("dcgan_odd", "gan", 64, "tanh", lambda: arch.OddDCGANGenerator(64, 64), arch.MLPDiscriminator),
    # the same two layouts trained to convergence by the plain recipe (no R1, no label smoothing):
    # a deeply saturated background, as the generators users bring have (docs/design.md §3b)
    Spec("mlp_gan_converged", "gan", 64, "tanh", lambda: arch.TutorialMLPGenerator(64, 256), arch.MLPDiscriminator),
    Spec("dcgan_odd_converged", "gan", 64, "tanh", lambda: arch.OddDCGANGenerator(64, 64), arch.MLPDiscriminator),
    Spec("dcgan_upsample", "gan", 32, "tanh", lambda: arch.UpsampleDCGANGenerator(32, 32), arch.DCGANDiscriminator),
    Spec("cgan_mlp", "gan", 32, "tanh", lambda: arch.ConditionalMLPGenerator(32, 10),
         lambda: arch.ConditionalMLPDiscriminator(10), n_classes=10),
    Spec("vae_relu_20_60_784", "vae", 20, "unit", lambda: arch.VAEDecoder((20, 60, 784)),
         lambda: arch.VAEEncoder(20)),
    Spec("vae_leaky_20_200_500_784", "vae", 20, "unit", lambda: arch.VAEDecoder((20, 200, 500, 784), 0.1),
         lambda: arch.VAEEncoder(20)),
)})


@dataclass
class Loaded:
    """A shipped generator ready to invert.

    Attributes:
        generator: eval-mode module, latents ``(B, latent_dim)`` -> images ``(B, 1, 28, 28)``.
        latent_dim: latent size; latents are drawn from N(0, I).
        pixel_range: ``(low, high)`` of the data it was trained on.
        encoder: the VAE's encoder (mean, log-variance), eval mode; None for GANs.
        n_classes: a label-conditional generator's classes (it takes ``(z, labels)``, labels
            ``(B,)`` long in ``[0, n_classes)``); 0 for a generator of ``z`` alone.
    """

    name: str
    generator: nn.Module
    latent_dim: int
    pixel_range: tuple[float, float]
    encoder: nn.Module | None
    n_classes: int = 0


def checkpoint_path(name: str) -> Path:
    return HERE / f"{name}.pt"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_tensor_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint that must be a flat ``{str: Tensor}`` dict.

    Raises:
        ValueError: the file holds pickled objects or anything but a plain tensor dict.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses arbitrary pickles with an UnpicklingError
        raise ValueError(f"{path} is not a plain tensor checkpoint ({type(e).__name__}); refusing to "
                         "unpickle it. Save weights with torch.save(module.state_dict(), path).") from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in obj.items()):
        raise ValueError(f"{path} holds a {type(obj).__name__}, Expected a flat dict of tensors")
    return obj


def build(name: str) -> tuple[nn.Module, nn.Module]:
    """Fresh (untrained) generator and critic (discriminator or encoder) for ``name``."""
    if name not in SPECS:
        raise KeyError(f"unknown model {name!r}; Expected one of {sorted(SPECS)}")
    spec = SPECS[name]
    return spec.generator(), spec.critic()


def save(name: str, generator: nn.Module, encoder: nn.Module | None = None, path: Path | None = None) -> Path:
    """Write the flat tensor dict of a trained model (the only format :func:`load` reads)."""
    tensors = {f"generator.{k}": v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    if encoder is not None:
        tensors.update({f"encoder.{k}": v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()})
    path = path or checkpoint_path(name)
    torch.save(tensors, path)
    return path


def load(name: str, *, path: str | Path | None = None) -> Loaded:
    """A shipped (or given) checkpoint of model ``name`` as an eval-mode generator."""
    generator, critic = build(name)
    spec = SPECS[name]
    tensors = read_tensor_dict(Path(path) if path else checkpoint_path(name))

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    generator.load_state_dict(part("generator."))
    encoder = None
    if spec.kind == "vae":
        critic.load_state_dict(part("encoder."))
        encoder = critic.eval()
    return Loaded(name, generator.eval(), spec.latent_dim, RANGES[spec.pixel_range], encoder, spec.n_classes)
