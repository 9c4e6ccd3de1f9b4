"""Hypothesis strategies that generate generators: random straight chains of Linear, Conv2d and
ConvTranspose2d (valid geometries only), BatchNorm in eval mode (folded by the adapters),
ReLU / LeakyReLU / Tanh / Sigmoid, bias on or off, expanding and non-expanding widths, float32
and float64. A drawn ``Spec`` is small data (shrinks well, prints readably); ``build`` turns it
into the ``nn.Sequential`` a user would have written, with weights from the spec's seed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch import nn

from .conftest import latents

#: the activations a generated layer may end in, with how to build each
ACTS = {
    "relu": lambda a: nn.ReLU(),
    "leaky": lambda a: nn.LeakyReLU(a),
    "tanh": lambda a: nn.Tanh(),
    "sigmoid": lambda a: nn.Sigmoid(),
}
MAX_UNITS = 400  # per layer: keeps one example in milliseconds to a second


@dataclass(frozen=True)
class LayerSpec:
    kind: str                 # "linear", "convT", "conv"
    out: int                  # units (linear) or channels (conv)
    act: str
    alpha: float = 0.1        # LeakyReLU slope
    bias: bool = True
    batchnorm: bool = False
    kernel: int = 1
    stride: int = 1
    padding: int = 0


@dataclass(frozen=True)
class Spec:
    latent: int
    layers: tuple[LayerSpec, ...]
    dtype: torch.dtype
    seed: int
    conv: bool                # the latent is viewed as (latent, 1, 1) and the layers are convolutions

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        body = ", ".join(f"{s.kind}({s.out}, k{s.kernel}s{s.stride}p{s.padding}){'+bn' if s.batchnorm else ''}"
                         f"{'' if s.bias else ' nobias'}->{s.act}" for s in self.layers)
        return f"Spec(latent={self.latent}, [{body}], {self.dtype}, seed={self.seed})"


def _conv_out(kind: str, size: int, k: int, s: int, p: int) -> int:
    return (size - 1) * s - 2 * p + k if kind == "convT" else (size + 2 * p - k) // s + 1


@st.composite
def layer_acts(draw) -> tuple[str, float]:
    """An activation and, used by LeakyReLU only, its slope."""
    return draw(st.sampled_from(sorted(ACTS))), draw(st.sampled_from([0.01, 0.1, 0.2, 0.5]))


@st.composite
def mlp_specs(draw, *, dtype=None) -> Spec:
    latent = draw(st.integers(1, 8))
    layers, width = [], latent
    for i in range(draw(st.integers(1, 3))):
        # expanding (the layer-wise pass can pin the input) or not (equal or fewer units)
        expand = draw(st.booleans())
        out = draw(st.integers(2 * width + 1, min(MAX_UNITS, 4 * width + 8))) if expand else draw(
            st.integers(1, max(1, 2 * width)))
        act, alpha = draw(layer_acts())
        layers.append(LayerSpec("linear", out, act, alpha, bias=draw(st.booleans()),
                                batchnorm=draw(st.booleans()) and i < 2))
        width = out
    return Spec(latent, tuple(layers), dtype or draw(st.sampled_from([torch.float32, torch.float64])),
                draw(st.integers(0, 2**31 - 1)), conv=False)


@st.composite
def conv_specs(draw, *, dtype=None) -> Spec:
    latent = draw(st.integers(1, 6))
    layers, size = [], 1
    for i in range(draw(st.integers(1, 3))):
        kind = "convT" if i == 0 else draw(st.sampled_from(["convT", "conv"]))
        k, s = draw(st.integers(1, 4)), draw(st.integers(1, 2))
        p = draw(st.integers(0, (k - 1) // 2))
        new = _conv_out(kind, size, k, s, p)
        out = draw(st.integers(1, 6))
        if new < 1 or out * new * new > MAX_UNITS:  # an invalid or too large geometry: keep the size
            kind, k, s, p, new = "conv", 1, 1, 0, size
        act, alpha = draw(layer_acts())
        layers.append(LayerSpec(kind, out, act, alpha, bias=draw(st.booleans()), batchnorm=draw(st.booleans()),
                                kernel=k, stride=s, padding=p))
        size = new
    return Spec(latent, tuple(layers), dtype or draw(st.sampled_from([torch.float32, torch.float64])),
                draw(st.integers(0, 2**31 - 1)), conv=True)


def specs(*, dtype=None) -> st.SearchStrategy[Spec]:
    return st.one_of(mlp_specs(dtype=dtype), conv_specs(dtype=dtype))


def build(spec: Spec) -> nn.Sequential:
    """The module a user would have written for ``spec``, in eval mode, weights from its seed
    (rows ~ N(0, 1/fan_in), BatchNorm with non-trivial running statistics)."""
    g = torch.Generator().manual_seed(spec.seed)
    mods: list[nn.Module] = [nn.Unflatten(1, (spec.latent, 1, 1))] if spec.conv else []
    ch = spec.latent
    for s in spec.layers:
        if s.kind == "linear":
            lin = nn.Linear(ch, s.out, bias=s.bias)
        elif s.kind == "convT":
            lin = nn.ConvTranspose2d(ch, s.out, s.kernel, s.stride, s.padding, bias=s.bias)
        else:
            lin = nn.Conv2d(ch, s.out, s.kernel, s.stride, s.padding, bias=s.bias)
        fan_in = ch * (s.kernel ** 2 if s.kind != "linear" else 1)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) / math.sqrt(fan_in))
            if s.bias:
                lin.bias.copy_(0.1 * torch.randn(lin.bias.shape, generator=g))
        mods.append(lin)
        if s.batchnorm:
            bn = (nn.BatchNorm1d if s.kind == "linear" else nn.BatchNorm2d)(s.out)
            with torch.no_grad():
                bn.running_mean.copy_(0.2 * torch.randn(s.out, generator=g))
                bn.running_var.copy_(0.5 + torch.rand(s.out, generator=g))
                bn.weight.copy_(0.5 + torch.rand(s.out, generator=g))
                bn.bias.copy_(0.1 * torch.randn(s.out, generator=g))
            mods.append(bn)
        mods.append(ACTS[s.act](s.alpha))
        ch = s.out
    return nn.Sequential(*mods).to(spec.dtype).eval()


def latents_of(spec: Spec, n: int) -> torch.Tensor:
    """``n`` latents ~ N(0, I) in the spec's dtype, from a seed of the spec's own."""
    return latents(n, spec.latent, seed=spec.seed % 1000, dtype=spec.dtype)
