"""Linear operators of the chain, acting on flat per-sample vectors.

Every operator maps ``(B, in_dim) -> (B, out_dim)`` with ``matvec``; convolutions stay
matrix-free and become a dense matrix only on request (``dense``), with a size guard. (No
adjoint: nothing solves matrix-free yet; the first solver that does brings ``rmatvec`` with it.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import LayerTooLargeError

#: default largest dense matrix (entries) a solver may materialise: 2 GiB in float64
DEFAULT_MAX_DENSE = 2**28


class LinearOperator:
    """Base class: shapes and the dense fallback built from ``matvec``."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def in_dim(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_dim(self) -> int:
        return math.prod(self.out_shape)

    @property
    def dtype(self) -> torch.dtype:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        """``(B, in_dim) -> (B, out_dim)``."""
        raise NotImplementedError

    def map_tensors(self, fn) -> "LinearOperator":
        """The same operator with ``fn`` applied to each of its float tensors (the weights)."""
        raise NotImplementedError

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "LinearOperator":
        """A copy with the weights cast and/or moved (differentiable, like ``Tensor.to``)."""
        return self.map_tensors(lambda t: t.to(dtype=dtype, device=device))

    def detach(self) -> "LinearOperator":
        """A copy whose weights are cut from any autograd graph (what the solvers work on)."""
        return self.map_tensors(torch.Tensor.detach)

    def abs_bound(self) -> "LinearOperator | None":
        """An operator whose matrix bounds this one's entrywise in absolute value, ``|A| <= B``
        (the uniqueness radius pushes deviation bounds through it, :mod:`ganinvert.radius`); None
        where no such operator is known (a torch function with weights of either sign)."""
        return None

    def dense(self, *, max_entries: int = DEFAULT_MAX_DENSE) -> torch.Tensor:
        """The ``(out_dim, in_dim)`` matrix, built column block by column block.

        Raises:
            LayerTooLargeError: when ``out_dim * in_dim > max_entries``.
        """
        n, k = self.out_dim, self.in_dim
        if n * k > max_entries:
            raise LayerTooLargeError(
                f"a {type(self).__name__} layer {self.in_shape} -> {self.out_shape} needs a dense "
                f"{n} x {k} matrix ({n * k:,} entries), over the limit of {max_entries:,}. "
                "Raise max_dense_entries (ganinvert.Layerwise option) if memory allows, or use an optimisation inverter "
                "(method='adam') for this generator.")
        block = max(1, min(k, (1 << 24) // max(n, 1)))  # output blocks of at most 2^24 entries
        if block * k > 1 << 28:  # and unit-vector blocks within 2 GiB (a 50176-input layer's identity: 20 GB)
            block = max(1, (1 << 28) // k)
        cols = []
        for i in range(0, k, block):
            m = min(block, k - i)
            eye = torch.zeros(m, k, dtype=self.dtype, device=self.device)
            eye[torch.arange(m), torch.arange(i, i + m)] = 1.0
            cols.append(self.matvec(eye))  # (m, n)
        return torch.cat(cols, dim=0).T.contiguous()  # (n, k)


class Dense(LinearOperator):
    """A matrix ``W`` of shape ``(out_dim, in_dim)``."""

    def __init__(self, weight: torch.Tensor, *, in_shape: tuple[int, ...] | None = None,
                 out_shape: tuple[int, ...] | None = None) -> None:
        self.weight = weight
        self.in_shape = tuple(in_shape) if in_shape is not None else (weight.shape[1],)
        self.out_shape = tuple(out_shape) if out_shape is not None else (weight.shape[0],)

    dtype = property(lambda self: self.weight.dtype)
    device = property(lambda self: self.weight.device)

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        return u @ self.weight.T

    def map_tensors(self, fn) -> "Dense":
        return Dense(fn(self.weight), in_shape=self.in_shape, out_shape=self.out_shape)

    def abs_bound(self) -> "Dense":
        return self.map_tensors(torch.abs)

    def dense(self, *, max_entries: int = DEFAULT_MAX_DENSE) -> torch.Tensor:
        return self.weight


class Diagonal(LinearOperator):
    """Elementwise scaling (a folded BatchNorm); ``scale`` has the per-sample shape."""

    def __init__(self, scale: torch.Tensor) -> None:
        self.scale = scale
        self.in_shape = self.out_shape = tuple(scale.shape)

    dtype = property(lambda self: self.scale.dtype)
    device = property(lambda self: self.scale.device)

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        return u * self.scale.reshape(1, -1)

    def map_tensors(self, fn) -> "Diagonal":
        return Diagonal(fn(self.scale))

    def abs_bound(self) -> "Diagonal":
        return self.map_tensors(torch.abs)


class _Conv(LinearOperator):
    """Shared state of the two convolutions: weight and the geometry keywords."""

    def __init__(self, weight: torch.Tensor, *, in_shape: tuple[int, int, int], **geometry) -> None:
        self.weight = weight
        self.geometry = geometry
        self.in_shape = tuple(in_shape)
        # by the formula, not a probe on the meta device: the first meta op of a process imports
        # torch's meta kernels, 2-3 s that every first call of invert paid
        self.out_shape = (self._out_channels(weight), *self._out_hw(self.in_shape[1:], weight.shape[2:]))

    dtype = property(lambda self: self.weight.dtype)
    device = property(lambda self: self.weight.device)

    def _apply(self, u: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _out_channels(self, weight: torch.Tensor) -> int:
        raise NotImplementedError

    def _out_hw(self, hw: tuple[int, ...], kernel: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def _pair(self, key: str, default: int) -> tuple[int, int]:
        v = self.geometry.get(key, default)
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        out = self._apply(u.reshape(-1, *self.in_shape), self.weight)  # (B, C, H, W)
        return out.reshape(u.shape[0], -1)

    def map_tensors(self, fn) -> "_Conv":
        return type(self)(fn(self.weight), in_shape=self.in_shape, **self.geometry)

    def abs_bound(self) -> "_Conv":  # each entry of the matrix is one kernel tap (or zero)
        return self.map_tensors(torch.abs)


class Conv2d(_Conv):
    """``F.conv2d`` without bias."""

    def _apply(self, u, weight):
        return F.conv2d(u, weight, None, **self.geometry)

    def _out_channels(self, weight):
        return weight.shape[0]

    def _out_hw(self, hw, kernel):
        s, p, d = self._pair("stride", 1), self._pair("padding", 0), self._pair("dilation", 1)
        return tuple((hw[i] + 2 * p[i] - d[i] * (kernel[i] - 1) - 1) // s[i] + 1 for i in range(2))


class ConvTranspose2d(_Conv):
    """``F.conv_transpose2d`` without bias.

    With few output channels (a last layer: 64 -> 1) and no groups or dilation it is
    ``fold(W^T u)`` (every input pixel's columns summed into place): for a Jacobian's 64 directions
    through ``dcgan_odd``'s last layer 9x faster on CPU than torch's kernel (the same sums).
    Otherwise, on CPU, its input goes in channels-last, where torch's float64 kernel is faster
    (``benchmarks/bench_conv.py``: ``dcgan_odd``'s ``(256, 128, 4)``, forward and backward, 2.4x
    at batch 8 in float64, 1.4x for a float32 Jacobian), with sums the same in any batch."""

    def _apply(self, u, weight):
        g = self.geometry
        if weight.shape[1] <= _FOLD_CHANNELS and g.get("groups", 1) == 1 and self._pair("dilation", 1) == (1, 1):
            cols = weight.reshape(weight.shape[0], -1).T @ u.reshape(u.shape[0], u.shape[1], -1)
            return F.fold(cols, self.out_shape[1:], weight.shape[2:], stride=g.get("stride", 1),
                          padding=g.get("padding", 0))
        u = u.contiguous(memory_format=torch.channels_last) if u.device.type == "cpu" else u
        return F.conv_transpose2d(u, weight, None, **g)

    def _out_channels(self, weight):
        return weight.shape[1] * self.geometry.get("groups", 1)

    def _out_hw(self, hw, kernel):
        s, p, d = self._pair("stride", 1), self._pair("padding", 0), self._pair("dilation", 1)
        op = self._pair("output_padding", 0)
        return tuple((hw[i] - 1) * s[i] - 2 * p[i] + d[i] * (kernel[i] - 1) + op[i] + 1 for i in range(2))


_FOLD_CHANNELS = 4  # output channels up to which ConvTranspose2d folds its columns itself


class LinearFunction(LinearOperator):
    """A fixed linear torch function of the per-sample input, applied matrix-free: ``F.interpolate``
    (``nn.Upsample``, any mode and scale), ``F.avg_pool2d``, zero ``F.pad``, ``F.pixel_shuffle``,
    ``permute``. It has no weights; a zero-size tensor carries its dtype and device.

    Args:
        fn: the function (or a module without weights), called as ``fn(u, *args, **kwargs)`` on
            ``(B, *in_shape)``; batch-wise and linear in ``u`` (the chain check compares the whole
            chain with the module).
        args, kwargs: its fixed arguments, exactly as the module passes them.
        in_shape: per-sample input shape.
        like: a tensor of the dtype and device the operator works in.
    """

    def __init__(self, fn, *, args: tuple = (), kwargs: dict, in_shape: tuple[int, ...], like: torch.Tensor) -> None:
        self.fn, self.args, self.kwargs = fn, tuple(args), dict(kwargs)
        self.in_shape, self.like = tuple(in_shape), like.new_zeros(0)
        probe = torch.zeros((1, *self.in_shape), dtype=self.like.dtype)
        self.out_shape = tuple(fn(probe, *self.args, **self.kwargs).shape[1:])

    dtype = property(lambda self: self.like.dtype)
    device = property(lambda self: self.like.device)

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        return self.fn(u.reshape(-1, *self.in_shape), *self.args, **self.kwargs).reshape(u.shape[0], -1)

    def map_tensors(self, fn) -> "LinearFunction":
        return LinearFunction(self.fn, args=self.args, kwargs=self.kwargs, in_shape=self.in_shape, like=fn(self.like))


class Slice(LinearOperator):
    """Entries ``start:start + n`` of the input (one value among those a layer carries side by
    side, see :class:`Stack`); the whole input is the identity, which :func:`compose` drops."""

    def __init__(self, in_dim: int, start: int, out_shape: tuple[int, ...], *, like: torch.Tensor) -> None:
        self.in_shape, self.out_shape, self.start = (in_dim,), tuple(out_shape), start
        self.like = like.new_zeros(0)

    dtype = property(lambda self: self.like.dtype)
    device = property(lambda self: self.like.device)

    @property
    def identity(self) -> bool:
        return self.start == 0 and self.out_dim == self.in_dim

    def matvec(self, u):
        return u[:, self.start:self.start + self.out_dim]

    def map_tensors(self, fn) -> "Slice":
        return Slice(self.in_dim, self.start, self.out_shape, like=fn(self.like))

    def abs_bound(self) -> "Slice":
        return self


class Sum(LinearOperator):
    """``sum_i op_i(u)``: the join of a residual block, ``f(x) + shortcut(x)``."""

    def __init__(self, terms: tuple[LinearOperator, ...], *, out_shape: tuple[int, ...]) -> None:
        self.terms, self.in_shape, self.out_shape = tuple(terms), terms[0].in_shape, tuple(out_shape)

    dtype = property(lambda self: self.terms[0].dtype)
    device = property(lambda self: self.terms[0].device)

    def matvec(self, u):
        return sum(op.matvec(u) for op in self.terms)

    def map_tensors(self, fn) -> "Sum":
        return Sum(tuple(op.map_tensors(fn) for op in self.terms), out_shape=self.out_shape)

    def abs_bound(self) -> "Sum | None":  # |A + B| <= |A| + |B|
        terms = [op.abs_bound() for op in self.terms]
        return None if None in terms else Sum(tuple(terms), out_shape=self.out_shape)


class Stack(LinearOperator):
    """The parts' outputs concatenated: along per-sample dimension ``dim`` of their shapes
    (``torch.cat``), or flat one after the other (``dim=None``: a layer's values side by side). A
    part may be ``None``, a constant (its entries come from the bias)."""

    def __init__(self, parts: tuple[LinearOperator | None, ...], shapes: tuple[tuple[int, ...], ...],
                 *, in_dim: int, dim: int | None = None) -> None:
        self.parts, self.shapes, self.dim = tuple(parts), tuple(map(tuple, shapes)), dim
        self.in_shape = (in_dim,)
        # by torch.cat's rule: a meta-device probe's first use imports torch's compiler (2.7 s)
        self.out_shape = (sum(math.prod(s) for s in self.shapes),) if dim is None else _cat_shape(self.shapes, dim)
        self._some = next(op for op in self.parts if op is not None)

    dtype = property(lambda self: self._some.dtype)
    device = property(lambda self: self._some.device)

    def matvec(self, u):
        B = u.shape[0]
        outs = [u.new_zeros(B, *s) if op is None else op.matvec(u).reshape(B, *s)
                for op, s in zip(self.parts, self.shapes)]
        if self.dim is None:
            return torch.cat([o.reshape(B, -1) for o in outs], 1)
        return torch.cat(outs, self.dim + 1).reshape(B, -1)

    def map_tensors(self, fn) -> "Stack":
        return Stack(tuple(None if op is None else op.map_tensors(fn) for op in self.parts), self.shapes,
                     in_dim=self.in_dim, dim=self.dim)

    def abs_bound(self) -> "Stack | None":
        parts = [None if op is None else op.abs_bound() for op in self.parts]
        if any(b is None and op is not None for b, op in zip(parts, self.parts)):
            return None
        return Stack(tuple(parts), self.shapes, in_dim=self.in_dim, dim=self.dim)


def _cat_shape(shapes: tuple[tuple[int, ...], ...], dim: int) -> tuple[int, ...]:
    """The shape ``torch.cat`` gives tensors of ``shapes`` along ``dim`` (they agree elsewhere)."""
    first, d = shapes[0], dim % len(shapes[0]) if -len(shapes[0]) <= dim < len(shapes[0]) else None
    if d is None or any(len(s) != len(first) or s[:d] + s[d + 1:] != first[:d] + first[d + 1:] for s in shapes):
        raise ValueError(f"Expected: shapes that agree but along dimension {dim}, Got: cannot concatenate {shapes}")
    return (*first[:d], sum(s[d] for s in shapes), *first[d + 1:])


class Composed(LinearOperator):
    """``second(first(u))``, kept matrix-free."""

    def __init__(self, first: LinearOperator, second: LinearOperator) -> None:
        self.first, self.second = first, second
        self.in_shape, self.out_shape = first.in_shape, second.out_shape

    dtype = property(lambda self: self.first.dtype)
    device = property(lambda self: self.first.device)

    def matvec(self, u):
        return self.second.matvec(self.first.matvec(u))

    def map_tensors(self, fn) -> "Composed":
        return Composed(self.first.map_tensors(fn), self.second.map_tensors(fn))

    def abs_bound(self) -> "Composed | None":  # |B A| <= |B| |A|
        first, second = self.first.abs_bound(), self.second.abs_bound()
        return None if first is None or second is None else Composed(first, second)


def compose(first: LinearOperator, second: LinearOperator) -> LinearOperator:
    """``second o first``, fused into one matrix where that is free of cost."""
    if first.out_dim != second.in_dim:
        raise ValueError(f"cannot compose {first.out_shape} -> {second.in_shape}")
    if isinstance(first, Slice) and first.identity:
        return second
    if isinstance(second, Diagonal) and isinstance(first, Dense):
        w = first.weight * second.scale.reshape(-1, 1)
        return Dense(w, in_shape=first.in_shape, out_shape=second.out_shape)
    if isinstance(first, Diagonal) and isinstance(second, Dense):
        w = second.weight * first.scale.reshape(1, -1)
        return Dense(w, in_shape=first.in_shape, out_shape=second.out_shape)
    if isinstance(first, Diagonal) and isinstance(second, Diagonal):
        return Diagonal(first.scale * second.scale.reshape(first.scale.shape))
    if isinstance(first, Dense) and isinstance(second, Dense):
        return Dense(second.weight @ first.weight, in_shape=first.in_shape, out_shape=second.out_shape)
    return Composed(first, second)


class RowSelect(LinearOperator):
    """The rows ``index`` of ``op`` (observed pixels): ``(P op)(u) = op(u)[index]``. A row
    selection commutes with elementwise activations, so a masked layer is a layer again."""

    def __init__(self, op: LinearOperator, index: torch.Tensor) -> None:
        self.op, self.index = op, index.to(device=op.device)
        self.in_shape, self.out_shape = op.in_shape, (int(index.numel()),)

    dtype = property(lambda self: self.op.dtype)
    device = property(lambda self: self.op.device)

    def matvec(self, u):
        return self.op.matvec(u)[:, self.index]

    def map_tensors(self, fn) -> "RowSelect":
        return RowSelect(self.op.map_tensors(fn), self.index)  # the index follows op's device

    def abs_bound(self) -> "RowSelect | None":
        op = self.op.abs_bound()
        return None if op is None else RowSelect(op, self.index)

    def dense(self, *, max_entries: int = DEFAULT_MAX_DENSE) -> torch.Tensor:
        if isinstance(self.op, Dense):  # no need to build the unobserved rows
            return self.op.dense(max_entries=max_entries)[self.index]
        return super().dense(max_entries=max_entries)
