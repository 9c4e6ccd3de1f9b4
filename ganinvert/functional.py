"""What one graph node converts to: a leaf module through its converter (:mod:`ganinvert.converters`),
a function or tensor method through the tables here (activations, reshapes, and the functions
that are linear in their input: interpolation, pooling, padding, pixel shuffle, permutes).
Sums, differences, concatenations and constant scales combine values and live in
:mod:`ganinvert.lifting`."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import fx, nn

from . import activations as acts
from .converters import Affine, Converter, Piece, Reshape, fixed_linear, integer_scale, upsample_nearest
from .errors import UnsupportedLayerError
from .operators import Conv2d, ConvTranspose2d, Dense

_RESHAPE_MODULES = (nn.Flatten, nn.Unflatten)
_RESHAPE = frozenset({torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, "view", "reshape", "flatten",
                      "unflatten", "squeeze", "unsqueeze", "contiguous", "view_as", "reshape_as"})


def _arg(a: tuple, kw: dict, i: int, name: str, default):
    return a[i] if len(a) > i else kw.get(name, default)


def _leaky(a, kw):
    return acts.LeakyReLU(a[1] if len(a) > 1 else kw.get("negative_slope", 0.01))


def _clamp(a, kw) -> acts.Activation:
    lo, hi = _arg(a, kw, 1, "min", None), _arg(a, kw, 2, "max", None)
    if lo == 0 and hi is None:
        return acts.ReLU()
    if lo is None or hi is None or isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
        raise UnsupportedLayerError("clamp with one bound other than min=0, or with tensor bounds, is not invertible")
    return acts.Hardtanh(float(lo), float(hi))


#: ``(args, kwargs) -> activation`` for functions and tensor methods (named by string)
ACTIVATIONS: Mapping[object, Callable[[tuple, dict], acts.Activation]] = MappingProxyType({
    **{f: (lambda a, kw: acts.ReLU()) for f in (F.relu, torch.relu, torch.relu_, F.relu_, "relu", "relu_")},
    **{f: (lambda a, kw: acts.Tanh()) for f in (torch.tanh, F.tanh, "tanh", "tanh_")},
    **{f: (lambda a, kw: acts.Sigmoid()) for f in (torch.sigmoid, F.sigmoid, "sigmoid", "sigmoid_")},
    F.leaky_relu: _leaky,
    F.hardtanh: lambda a, kw: acts.Hardtanh(_arg(a, kw, 1, "min_val", -1.0), _arg(a, kw, 2, "max_val", 1.0)),
    F.relu6: lambda a, kw: acts.Hardtanh(0.0, 6.0),
    F.elu: lambda a, kw: acts.ELU(_arg(a, kw, 1, "alpha", 1.0)),
    F.softplus: lambda a, kw: acts.Softplus(_arg(a, kw, 1, "beta", 1.0), _arg(a, kw, 2, "threshold", 20.0)),
    torch.clamp: _clamp, torch.clip: _clamp, "clamp": _clamp, "clip": _clamp,
})
#: functions linear in their first argument; the other arguments are fixed
LINEAR = frozenset({F.interpolate, F.upsample, F.upsample_nearest, F.upsample_bilinear, F.avg_pool1d, F.avg_pool2d,
                    F.adaptive_avg_pool2d, F.pixel_shuffle, F.pixel_unshuffle, torch.pixel_shuffle,
                    torch.pixel_unshuffle})


def _weights(w: torch.Tensor, b, positions: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A functional layer's constant weight and bias in float64, the bias spread over ``positions``."""
    return w.detach().to(torch.float64), None if b is None else b.detach().to(torch.float64).repeat_interleave(positions)


def _f_linear(a: tuple, kw: dict, in_shape: tuple) -> list[Piece]:
    w, b = _weights(a[1], _arg(a, kw, 2, "bias", None), 1)
    return [Affine(Dense(w), b if b is not None else torch.zeros(w.shape[0], dtype=torch.float64))]


def _f_conv(op_type, names: tuple[str, ...]):
    """``F.conv2d`` / ``F.conv_transpose2d`` with a constant weight (what a Conv2d subclass's
    forward calls): the convolution operator of the module converters."""
    def build(a: tuple, kw: dict, in_shape: tuple) -> list[Piece]:
        geometry = {n: _arg(a, kw, 3 + i, n, d) for i, (n, d) in enumerate(names)}
        w = a[1].detach().to(torch.float64)
        op = op_type(w, in_shape=in_shape, **geometry)
        bias = _arg(a, kw, 2, "bias", None)
        positions = math.prod(op.out_shape[1:])
        b = torch.zeros(op.out_dim, dtype=torch.float64) if bias is None else _weights(w, bias, positions)[1]
        return [Affine(op, b)]
    return build


def _pad(a: tuple, kw: dict, in_shape: tuple) -> list[Piece]:
    pad, mode = _arg(a, kw, 1, "pad", None), _arg(a, kw, 2, "mode", "constant")
    value = _arg(a, kw, 3, "value", None) or 0.0
    [piece] = fixed_linear(F.pad, in_shape, args=(pad, mode), what="F.pad")
    border = F.pad(torch.zeros((1, *in_shape), dtype=torch.float64), pad, mode, value) if mode == "constant" else None
    return [Affine(piece.op, piece.bias if border is None else border.reshape(-1))]


def _permute(a: tuple, kw: dict, in_shape: tuple) -> list[Piece]:
    dims = tuple(a[1]) if len(a) == 2 and isinstance(a[1], (tuple, list)) else tuple(a[1:]) or tuple(kw["dims"])
    dims = tuple(d % (len(in_shape) + 1) for d in dims)
    if dims[0] != 0:
        raise UnsupportedLayerError(f"permute{dims} moves the batch dimension")
    return fixed_linear(torch.permute, in_shape, args=(dims,), what="permute")


def _transpose(a: tuple, kw: dict, in_shape: tuple) -> list[Piece]:
    d0, d1 = (_arg(a, kw, 1, "dim0", None) % (len(in_shape) + 1), _arg(a, kw, 2, "dim1", None) % (len(in_shape) + 1))
    if 0 in (d0, d1):
        raise UnsupportedLayerError("transpose moves the batch dimension")
    return fixed_linear(torch.transpose, in_shape, args=(d0, d1), what="transpose")


#: ``(args, kwargs, in_shape) -> pieces`` for the functions whose pieces need their arguments
BUILDERS: Mapping[object, Callable[[tuple, dict, tuple], list[Piece]]] = MappingProxyType({
    F.pad: _pad, torch.permute: _permute, "permute": _permute, torch.transpose: _transpose, "transpose": _transpose,
    F.linear: _f_linear,
    F.conv2d: _f_conv(Conv2d, (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1))),
    F.conv_transpose2d: _f_conv(ConvTranspose2d, (("stride", 1), ("padding", 0), ("output_padding", 0),
                                                  ("groups", 1), ("dilation", 1))),
})


def _where(node: fx.Node) -> str:
    return f"'{node.target}'" if node.op == "call_module" else f"{node.op} {node.target!r}"


def _module_pieces(node: fx.Node, sub: nn.Module, in_shape: tuple, reshape: list[Piece],
                   converters: Mapping[type, Converter]) -> list[Piece]:
    conv = next((c for t, c in converters.items() if type(sub) is t), None)
    conv = conv or next((c for t, c in converters.items() if isinstance(sub, t)), None)
    if conv is None:
        raise UnsupportedLayerError(
            f"module '{node.target}' of type {type(sub).__name__} is not supported. "
            f"Supported: {', '.join(sorted(t.__name__ for t in converters))}. "
            "Hint: pass converters={YourLayer: fn} to add one.")
    try:
        pieces = list(conv(sub, in_shape))
    except UnsupportedLayerError as e:
        raise UnsupportedLayerError(f"module '{node.target}' ({type(sub).__name__}): {e}") from None
    return pieces + reshape if isinstance(sub, _RESHAPE_MODULES) else pieces


def node_pieces(node: fx.Node, module: nn.Module, in_shape: tuple, out: torch.Tensor, args: tuple, kwargs: dict,
                converters: Mapping[type, Converter]) -> list[Piece]:
    """Pieces for one graph node with one input computed from ``z`` (per-sample shape
    ``in_shape``), given its probed output ``out`` and its evaluated arguments."""
    reshape = [Reshape(tuple(out.shape[1:]))]
    if node.op == "call_module":
        return _module_pieces(node, module.get_submodule(node.target), in_shape, reshape, converters)
    target = node.target if node.op == "call_function" else str(node.target)
    try:
        if target in ACTIVATIONS:
            return [ACTIVATIONS[target](args, kwargs)]
        if target in _RESHAPE:
            return reshape
        if target is F.interpolate:
            scale = integer_scale(_arg(args, kwargs, 1, "size", None), _arg(args, kwargs, 2, "scale_factor", None),
                                  _arg(args, kwargs, 3, "mode", "nearest"), in_shape)
            if scale is not None:
                return fixed_linear(upsample_nearest, in_shape, args=(scale,), what="F.interpolate")
        if target in LINEAR:
            return fixed_linear(target, in_shape, args=args[1:], kwargs=kwargs, what=target.__name__)
        if target in BUILDERS:
            return BUILDERS[target](args, kwargs, in_shape)
    except (ValueError, TypeError, UnsupportedLayerError) as e:
        raise UnsupportedLayerError(f"operation {_where(node)} (node '{node.name}'): {e}") from None
    raise UnsupportedLayerError(
        f"operation {_where(node)} (node '{node.name}') is not supported: it is not linear in its input, "
        "nor an activation, nor a reshape that the chain knows.")
