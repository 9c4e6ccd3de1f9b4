"""Hypothesis strategies that generate generators: random chains of Linear, Conv2d and
ConvTranspose2d (valid geometries only), BatchNorm in eval mode (folded by the adapters),
ReLU / LeakyReLU / PReLU / Hardtanh / Tanh / Sigmoid / ELU / Softplus, bias on or off, expanding
and non-expanding widths, residual blocks ``x + act(layer(x))``, nearest or bilinear upsampling
before a convolution, a label-conditional input (an embedding concatenated with ``z``), float32
and float64. A drawn ``Spec`` is small data (shrinks well, prints readably); ``build`` turns it
into the module a user would have written, with weights from the spec's seed."""

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
    "prelu": lambda a: nn.PReLU(1, init=a),
    "hardtanh": lambda a: nn.Hardtanh(-1.0 - a, 1.0 + a),
    "tanh": lambda a: nn.Tanh(),
    "sigmoid": lambda a: nn.Sigmoid(),
    "elu": lambda a: nn.ELU(1.0 - a),
    "softplus": lambda a: nn.Softplus(1.0 + 4 * a),
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
    block: str = ""           # "residual": x + act(layer(x)); "nearest"/"bilinear": upsampled x2 first


@dataclass(frozen=True)
class Spec:
    latent: int
    layers: tuple[LayerSpec, ...]
    dtype: torch.dtype
    seed: int
    conv: bool                # the latent is viewed as (latent, 1, 1) and the layers are convolutions
    classes: int = 0          # > 0: G(z, labels), the labels' embedding concatenated with z

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        body = ", ".join(f"{s.block + ' ' if s.block else ''}{s.kind}({s.out}, k{s.kernel}s{s.stride}p{s.padding})"
                         f"{'+bn' if s.batchnorm else ''}{'' if s.bias else ' nobias'}->{s.act}" for s in self.layers)
        return (f"Spec(latent={self.latent}, [{body}], {self.dtype}, seed={self.seed}"
                f"{f', classes={self.classes}' if self.classes else ''})")


def _conv_out(kind: str, size: int, k: int, s: int, p: int) -> int:
    return (size - 1) * s - 2 * p + k if kind == "convT" else (size + 2 * p - k) // s + 1


@st.composite
def layer_acts(draw) -> tuple[str, float]:
    """An activation and, used by LeakyReLU only, its slope."""
    return draw(st.sampled_from(sorted(ACTS))), draw(st.sampled_from([0.01, 0.1, 0.2, 0.5]))


@st.composite
def mlp_specs(draw, *, dtype=None) -> Spec:
    latent = draw(st.integers(1, 8))
    classes = draw(st.sampled_from([0, 0, 0, 3]))  # one in four label-conditional
    layers, width = [], latent + classes
    for i in range(draw(st.integers(1, 3))):
        # expanding (the layer-wise pass can pin the input) or not (equal or fewer units), or a
        # residual block keeping the width
        block = "residual" if i > 0 and draw(st.integers(0, 4)) == 0 else ""
        expand = draw(st.booleans())
        out = width if block else draw(st.integers(2 * width + 1, min(MAX_UNITS, 4 * width + 8))) if expand else draw(
            st.integers(1, max(1, 2 * width)))
        act, alpha = draw(layer_acts())
        layers.append(LayerSpec("linear", out, act, alpha, bias=draw(st.booleans()),
                                batchnorm=draw(st.booleans()) and i < 2, block=block))
        width = out
    return Spec(latent, tuple(layers), dtype or draw(st.sampled_from([torch.float32, torch.float64])),
                draw(st.integers(0, 2**31 - 1)), conv=False, classes=classes)


@st.composite
def conv_specs(draw, *, dtype=None) -> Spec:
    latent = draw(st.integers(1, 6))
    layers, size = [], 1
    for i in range(draw(st.integers(1, 3))):
        kind = "convT" if i == 0 else draw(st.sampled_from(["convT", "conv"]))
        up = draw(st.sampled_from(["", "", "nearest", "bilinear"])) if kind == "conv" else ""
        k, s = draw(st.integers(1, 4)), draw(st.integers(1, 2))
        p = draw(st.integers(0, (k - 1) // 2))
        new = _conv_out(kind, size * (2 if up else 1), k, s, p)
        out = draw(st.integers(1, 6))
        if new < 1 or out * new * new > MAX_UNITS:  # an invalid or too large geometry: keep the size
            kind, k, s, p, new, up = "conv", 1, 1, 0, size, ""
        act, alpha = draw(layer_acts())
        layers.append(LayerSpec(kind, out, act, alpha, bias=draw(st.booleans()), batchnorm=draw(st.booleans()),
                                kernel=k, stride=s, padding=p, block=up))
        size = new
    return Spec(latent, tuple(layers), dtype or draw(st.sampled_from([torch.float32, torch.float64])),
                draw(st.integers(0, 2**31 - 1)), conv=True)


def specs(*, dtype=None) -> st.SearchStrategy[Spec]:
    return st.one_of(mlp_specs(dtype=dtype), conv_specs(dtype=dtype))


class Residual(nn.Module):
    """``x + body(x)``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class Conditional(nn.Module):
    """``net(cat(embedding(labels), z))``, as label-conditional GANs are written."""

    def __init__(self, net: nn.Module, classes: int, g: torch.Generator) -> None:
        super().__init__()
        self.emb, self.net = nn.Embedding(classes, classes), net
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn(classes, classes, generator=g))

    def forward(self, z, labels):
        return self.net(torch.cat((self.emb(labels).to(z.dtype), z), -1))


def build(spec: Spec) -> nn.Module:
    """The module a user would have written for ``spec``, in eval mode, weights from its seed
    (rows ~ N(0, 1/fan_in), BatchNorm with non-trivial running statistics); ``G(z, labels)`` when
    the spec has classes."""
    g = torch.Generator().manual_seed(spec.seed)
    mods: list[nn.Module] = [nn.Unflatten(1, (spec.latent, 1, 1))] if spec.conv else []
    ch = spec.latent + spec.classes
    for s in spec.layers:
        if s.block in ("nearest", "bilinear"):
            mods.append(nn.Upsample(scale_factor=2, mode=s.block))
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
        if s.block == "residual":  # the layer, its BatchNorm and activation are the block's body
            body = mods[-(2 + s.batchnorm):]
            del mods[-(2 + s.batchnorm):]
            mods.append(Residual(nn.Sequential(*body)))
        ch = s.out
    net = nn.Sequential(*mods)
    return (Conditional(net, spec.classes, g) if spec.classes else net).to(spec.dtype).eval()


def latents_of(spec: Spec, n: int) -> torch.Tensor:
    """``n`` latents ~ N(0, I) in the spec's dtype, from a seed of the spec's own."""
    return latents(n, spec.latent, seed=spec.seed % 1000, dtype=spec.dtype)


def cond_of(spec: Spec, n: int) -> tuple[torch.Tensor, ...]:
    """The labels of ``n`` samples of a conditional spec (two samples share one: the batch is split
    into groups of several), none for the others."""
    return (torch.arange(n) // 2 % spec.classes,) if spec.classes else ()
