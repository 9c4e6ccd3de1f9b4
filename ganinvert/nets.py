"""Random generators used as known-answer workloads: the paper's Gaussian nets (seeded, no
global RNG). Trained generators and checkpoint loading live in the ``models`` package."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Sequence

import torch
from torch import nn

_ACTIVATIONS = MappingProxyType({
    "relu": nn.ReLU,
    "leaky": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
})


def random_mlp(dims: Sequence[int], *, act: str = "relu", out_act: str | None = None,
               bias: bool = True, bias_std: float = 0.1, seed: int = 0,
               dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """A Gaussian MLP as in the paper's random-net experiments: weights ``N(0, 1/n)`` per
    output row, biases ``N(0, bias_std^2)``, in eval mode.

    Args:
        dims: layer widths from latent to output, e.g. ``(20, 100, 500)``.
        act: hidden activation, one of ``relu``, ``leaky`` (slope 0.2), ``tanh``, ``sigmoid``.
        out_act: output activation (default: ``act``).
        seed: seed of a private ``torch.Generator`` (the global RNG is untouched).
    """
    for name in (act, out_act or act):
        if name not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; Expected one of {sorted(_ACTIVATIONS)}")
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (k, n) in enumerate(zip(dims[:-1], dims[1:])):
        lin = nn.utils.skip_init(nn.Linear, k, n, bias=bias)  # no draw from the global RNG
        with torch.no_grad():
            lin.weight.copy_(torch.randn(n, k, generator=g) / math.sqrt(n))
            if bias:
                lin.bias.copy_(bias_std * torch.randn(n, generator=g))
        layers += [lin, _ACTIVATIONS[(out_act or act) if i == len(dims) - 2 else act]()]
    return nn.Sequential(*layers).to(dtype).eval()


def random_dcgan64(*, nz: int = 100, ngf: int = 64, seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """The standard 64x64 RGB DCGAN generator (Radford et al. 2016; the PyTorch DCGAN tutorial):
    latent ``(nz, 1, 1)``, ConvTranspose2d 4x4 blocks 512x4x4 -> 256x8x8 -> 128x16x16 -> 64x32x32
    with BatchNorm2d and ReLU, then 3x64x64 and Tanh; weights ``N(0, 0.02^2)`` as in DCGAN's
    initialisation, BatchNorm statistics set by one train-mode pass over 256 seeded latents (so
    every layer's pre-activations are centred, as after training), then eval mode. A scale
    workload, not a trained model."""
    g = torch.Generator().manual_seed(seed)
    chans = (nz, ngf * 8, ngf * 4, ngf * 2, ngf, 3)
    layers: list[nn.Module] = []
    for i, (k, n) in enumerate(zip(chans[:-1], chans[1:], strict=True)):
        conv = nn.utils.skip_init(nn.ConvTranspose2d, k, n, 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(0.02 * torch.randn(conv.weight.shape, generator=g))
        layers += [conv, nn.Tanh()] if i == len(chans) - 2 else [conv, nn.BatchNorm2d(n), nn.ReLU()]
    net = nn.Sequential(nn.Unflatten(1, (nz, 1, 1)), *layers).to(dtype)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None  # cumulative average: one pass sets the statistics exactly
        net.train()(torch.randn(256, nz, generator=g, dtype=dtype))
    return net.eval()
