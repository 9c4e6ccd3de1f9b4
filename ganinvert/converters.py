"""Module converters: each turns one leaf module into *pieces* of a chain (affine maps,
activations, reshapes). ``DEFAULT_CONVERTERS`` is read-only; users pass extra entries per call
(``to_chain(G, converters={MyBlock: fn})``) instead of editing a global table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from . import activations as acts
from .errors import UnsupportedLayerError
from .operators import Conv2d, ConvTranspose2d, Dense, Diagonal, LinearFunction, LinearOperator


@dataclass(frozen=True)
class Affine:
    """Piece ``u -> op(u) + bias`` (``bias`` flat, ``(op.out_dim,)``)."""

    op: LinearOperator
    bias: torch.Tensor


@dataclass(frozen=True)
class Reshape:
    """Piece that only changes the per-sample shape."""

    shape: tuple[int, ...]


Piece = Union[Affine, Reshape, acts.Activation]
#: ``converter(module, in_shape) -> pieces``; ``in_shape`` is the per-sample input shape
Converter = Callable[[nn.Module, tuple], Sequence[Piece]]


def _p(t: torch.Tensor) -> torch.Tensor:
    """A module tensor in float64, still attached to the module's graph (``to_chain`` detaches
    the chain unless asked for a differentiable one)."""
    return t.to(torch.float64)


def _zeros(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.float64, device=like.device)


def _linear(m: nn.Linear, in_shape: tuple) -> list[Piece]:
    if len(in_shape) != 1:
        raise UnsupportedLayerError(
            f"Linear expects a flat input per sample, got shape {in_shape}. "
            "Hint: add nn.Flatten() (or x.view(x.size(0), -1)) before it.")
    bias = _p(m.bias) if m.bias is not None else _zeros(m.out_features, m.weight)
    return [Affine(Dense(_p(m.weight)), bias)]


def _conv_geometry(m: nn.Module) -> dict:
    if m.padding_mode != "zeros":
        raise UnsupportedLayerError(f"{type(m).__name__} with padding_mode={m.padding_mode!r} "
                                    "is not supported (only 'zeros').")
    padding = m.padding
    if isinstance(padding, str):
        if padding != "valid":
            raise UnsupportedLayerError(f"{type(m).__name__} with padding={padding!r} is not "
                                        "supported; give the padding as numbers.")
        padding = 0
    return dict(stride=m.stride, padding=padding, dilation=m.dilation, groups=m.groups)


def _conv_shape(m: nn.Module, in_shape: tuple) -> tuple:
    if len(in_shape) != 3:
        raise UnsupportedLayerError(
            f"{type(m).__name__} expects (C, H, W) per sample, got {in_shape}. "
            "Hint: reshape first, e.g. z.view(-1, C, 1, 1).")
    return in_shape


def _conv_bias(m: nn.Module, op: LinearOperator) -> torch.Tensor:
    if m.bias is None:
        return _zeros(op.out_dim, m.weight)
    hw = math.prod(op.out_shape[1:])
    return _p(m.bias).repeat_interleave(hw)  # (C*H*W,)


def _conv2d(m: nn.Conv2d, in_shape: tuple) -> list[Piece]:
    op = Conv2d(_p(m.weight), in_shape=_conv_shape(m, in_shape), **_conv_geometry(m))
    return [Affine(op, _conv_bias(m, op))]


def _conv_transpose2d(m: nn.ConvTranspose2d, in_shape: tuple) -> list[Piece]:
    op = ConvTranspose2d(_p(m.weight), in_shape=_conv_shape(m, in_shape),
                         output_padding=m.output_padding, **_conv_geometry(m))
    return [Affine(op, _conv_bias(m, op))]


def _batchnorm(m: nn.modules.batchnorm._BatchNorm, in_shape: tuple) -> list[Piece]:
    if m.running_mean is None:
        raise UnsupportedLayerError(
            f"{type(m).__name__} with track_running_stats=False normalises with batch statistics "
            "even in eval mode, so it is not a fixed affine map and cannot be inverted.")
    scale = 1.0 / torch.sqrt(_p(m.running_var) + m.eps)
    shift = -_p(m.running_mean) * scale
    if m.affine:
        scale, shift = scale * _p(m.weight), shift * _p(m.weight) + _p(m.bias)
    rest = math.prod(in_shape[1:])  # per-channel constants broadcast over (H, W) or (L,)
    scale_full = scale.repeat_interleave(rest).reshape(in_shape)
    return [Affine(Diagonal(scale_full), shift.repeat_interleave(rest))]


def fixed_linear(fn: Callable, in_shape: tuple, *, args: tuple = (), kwargs: dict | None = None,
                 what: str = "") -> list[Piece]:
    """A function with no weights that is linear in its input (upsampling of any mode, average
    pooling, zero/reflect/replicate padding, pixel shuffle, permute): one matrix-free affine piece
    with no bias, :class:`~ganinvert.operators.LinearFunction`."""
    try:
        like = torch.zeros(0, dtype=torch.float64)
        op = LinearFunction(fn, args=args, kwargs=kwargs or {}, in_shape=in_shape, like=like)
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as e:
        raise UnsupportedLayerError(f"{what or fn} does not run on a {in_shape} input per sample ({e})") from None
    return [Affine(op, torch.zeros(op.out_dim, dtype=torch.float64))]


def _linear_module(m: nn.Module, in_shape: tuple) -> list[Piece]:
    return fixed_linear(m, in_shape, what=type(m).__name__)


def upsample_nearest(u: torch.Tensor, scale: tuple[int, int]) -> torch.Tensor:
    """Nearest upsampling of ``(B, C, H, W)`` by integer factors: one broadcast copy, 4x faster
    on the CPU than ``F.interpolate``'s kernel (and the same numbers), which matters when the
    Jacobian pushes ``k`` directions through it per sample."""
    B, C, H, W = u.shape
    sh, sw = scale
    return u[:, :, :, None, :, None].expand(B, C, H, sh, W, sw).reshape(B, C, H * sh, W * sw)


def integer_scale(size, scale_factor, mode: str, in_shape: tuple) -> tuple[int, int] | None:
    """``(sh, sw)`` when an interpolation is nearest upsampling of a ``(C, H, W)`` input by integer
    factors, else None."""
    if mode != "nearest" or len(in_shape) != 3:
        return None
    if size is not None:
        hw = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        ok = hw[0] % in_shape[1] == 0 and hw[1] % in_shape[2] == 0
        return (hw[0] // in_shape[1], hw[1] // in_shape[2]) if ok else None
    f = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor, scale_factor)
    return (int(f[0]), int(f[1])) if all(float(v).is_integer() and v >= 1 for v in f) else None


def _upsample(m: nn.Upsample, in_shape: tuple) -> list[Piece]:
    scale = integer_scale(m.size, m.scale_factor, m.mode, in_shape)
    if scale is None:
        return _linear_module(m, in_shape)
    return fixed_linear(upsample_nearest, in_shape, args=(scale,), what="Upsample")


def _constant_pad(m: nn.modules.padding._ConstantPadNd, in_shape: tuple) -> list[Piece]:
    """Padding with a constant ``c``: zero padding (linear) plus ``c`` on the border (a bias)."""
    [piece] = fixed_linear(F.pad, in_shape, args=(m.padding,), what=type(m).__name__)
    border = F.pad(torch.zeros((1, *in_shape), dtype=torch.float64), m.padding, value=float(m.value))
    return [Affine(piece.op, border.reshape(-1))]


def _prelu(m: nn.PReLU, in_shape: tuple) -> list[Piece]:
    """One slope per channel (or one for all), spread over the units: LeakyReLU with per-unit slopes,
    bijective when every slope is positive."""
    w = _p(m.weight).detach()
    n = math.prod(in_shape)
    slopes = w.expand(n) if w.numel() == 1 else w.repeat_interleave(n // w.numel())
    if not bool((slopes > 0).all()):
        raise UnsupportedLayerError(f"PReLU has a slope {float(w.min()):.3g} <= 0: the layer is not invertible")
    return [acts.LeakyReLU(slopes)]


def _nothing(m: nn.Module, in_shape: tuple) -> list[Piece]:
    return []


def _activation(factory: Callable[[nn.Module], acts.Activation]) -> Converter:
    return lambda m, in_shape: [factory(m)]


DEFAULT_CONVERTERS: Mapping[type, Converter] = MappingProxyType({
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    nn.ConvTranspose2d: _conv_transpose2d,
    nn.BatchNorm1d: _batchnorm,
    nn.BatchNorm2d: _batchnorm,
    nn.ReLU: _activation(lambda m: acts.ReLU()),
    nn.LeakyReLU: _activation(lambda m: acts.LeakyReLU(m.negative_slope)),
    nn.Tanh: _activation(lambda m: acts.Tanh()),
    nn.Sigmoid: _activation(lambda m: acts.Sigmoid()),
    nn.Hardtanh: _activation(lambda m: acts.Hardtanh(m.min_val, m.max_val)),  # ReLU6 is one
    nn.PReLU: _prelu,
    nn.ELU: _activation(lambda m: acts.ELU(m.alpha)),
    nn.Softplus: _activation(lambda m: acts.Softplus(m.beta, m.threshold)),
    nn.Upsample: _upsample,  # UpsamplingNearest2d and UpsamplingBilinear2d are ones
    nn.AvgPool1d: _linear_module,
    nn.AvgPool2d: _linear_module,
    nn.AdaptiveAvgPool2d: _linear_module,
    nn.PixelShuffle: _linear_module,
    nn.PixelUnshuffle: _linear_module,
    nn.ZeroPad2d: _linear_module,
    nn.ReflectionPad2d: _linear_module,
    nn.ReplicationPad2d: _linear_module,
    nn.modules.padding._ConstantPadNd: _constant_pad,
    nn.Identity: _nothing,
    nn.Dropout: _nothing,
    nn.Dropout1d: _nothing,
    nn.Dropout2d: _nothing,
    # Flatten / Unflatten are read off the traced shapes, like every reshape
    nn.Flatten: _nothing,
    nn.Unflatten: _nothing,
})
