"""The layer chain every generator is turned into: ``u -> phi(A u + b)``, layer after layer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .activations import Activation, Identity
from .operators import Dense, LinearOperator, RowSelect
from .tolerances import relative_residual


class Step(NamedTuple):
    """One layer of a forward pass, flat per sample: ``pre`` ``(B, n)`` the pre-activation
    ``A u + b``, ``out`` ``(B, n)`` the layer's output ``act(pre)``."""

    pre: torch.Tensor
    out: torch.Tensor

    @property
    def pattern(self) -> torch.Tensor:
        """``(B, n)`` bool: the on/off pattern ``pre >= 0`` (which branch each unit is on)."""
        return self.pre >= 0


@dataclass(frozen=True)
class Layer:
    """One layer ``y = act(op(u) + bias)`` on flat vectors.

    Attributes:
        op: the linear map, ``in_dim -> out_dim``.
        bias: ``(out_dim,)``.
        act: the activation applied elementwise.
        out_shape: per-sample shape of the output (for reshaping the final image).
    """

    op: LinearOperator
    bias: torch.Tensor
    act: Activation
    out_shape: tuple[int, ...]

    def to(self, dtype=None, device=None) -> "Layer":
        return Layer(self.op.to(dtype, device), self.bias.to(dtype=dtype, device=device),
                     self.act, self.out_shape)

    def detach(self) -> "Layer":
        return Layer(self.op.detach(), self.bias.detach(), self.act, self.out_shape)


@dataclass(frozen=True)
class Chain:
    """A generator as a sequence of :class:`Layer`.

    Attributes:
        layers: the layers, first (applied to z) to last (producing x).
        in_shape: per-sample latent shape, e.g. ``(20,)`` or ``(100, 1, 1)``.
    """

    layers: tuple[Layer, ...]
    in_shape: tuple[int, ...]

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.layers[-1].out_shape

    @property
    def in_dim(self) -> int:
        return math.prod(self.in_shape)

    @property
    def dense_macs(self) -> int:
        """Multiply-adds of one forward pass with every layer's operator written as a dense
        matrix (exact for dense layers, a bound for convolutions): the unit in which ``auto``
        weighs an LP, a Jacobian and a fit against each other."""
        return sum(layer.op.out_dim * layer.op.in_dim for layer in self.layers)

    @property
    def dtype(self) -> torch.dtype:
        return self.layers[0].bias.dtype

    @property
    def device(self) -> torch.device:
        return self.layers[0].bias.device

    def __len__(self) -> int:
        return len(self.layers)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "Chain":
        """A copy with every parameter cast/moved (the solvers use float64)."""
        return Chain(tuple(layer.to(dtype, device) for layer in self.layers), self.in_shape)

    def detach(self) -> "Chain":
        """A copy cut from the autograd graph of the module it came from (see
        ``to_chain(differentiable=True)``): what the solvers work on."""
        return Chain(tuple(layer.detach() for layer in self.layers), self.in_shape)

    def input_range(self, i: int) -> tuple[float, float]:
        """Closed range of layer ``i``'s input: free for the latent, else the range of the
        previous activation (``[0, inf)`` after a ReLU)."""
        return (-math.inf, math.inf) if i == 0 else self.layers[i - 1].act.range

    def walk(self, z: torch.Tensor, *, layers: int | None = None) -> list[Step]:
        """The one forward loop: a :class:`Step` (pre-activation, output, pattern) for every
        layer (of the first ``layers``), flat ``(B, n_i)`` each, for ``z`` (B, *in_shape), in the
        chain's dtype (a float32 module's chain is float64: its users' float32 latents are cast,
        not refused). Every other pass over the layers reads this one."""
        h, out = z.reshape(z.shape[0], -1).to(self.dtype), []  # (B, k)
        for layer in self.layers[:layers]:
            p = layer.op.matvec(h) + layer.bias
            h = layer.act.forward(p)
            out.append(Step(p, h))
        return out

    def forward_all(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Flat outputs of every layer, ``[(B, n_1), ..., (B, n_L)]``, for ``z`` (B, *in_shape)."""
        return [step.out for step in self.walk(z)]

    def output(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)`` flat ``(B, n)``, on the autograd graph (what the gradient searches fit)."""
        return self.walk(z)[-1].out

    #: exact structure was extracted: the LPs and the certificates apply (a
    #: :class:`~ganinvert.blackbox.BlackBox` has none)
    certifiable = True

    @property
    def output_act(self) -> Activation:
        """The output activation, whose range bounds valid observations."""
        return self.layers[-1].act

    def measured(self, M: torch.Tensor) -> "Chain":
        """This chain followed by the measurement ``M`` (m, n) as one more layer with no
        activation, ``y = M G(z)``: the generator's output activation becomes a hidden one, so the
        activation-pattern LP covers it."""
        last = Layer(Dense(M), torch.zeros(M.shape[0], dtype=M.dtype, device=M.device), Identity(), (M.shape[0],))
        return Chain(self.layers + (last,), self.in_shape)

    def patterns(self, z: torch.Tensor) -> list[torch.Tensor]:
        """The on/off pattern (``pre >= 0``) of every hidden layer at ``z``: ``[(B, n_l) bool]``,
        the activation region of ``z`` on a piecewise-linear chain."""
        return [step.pattern for step in self.walk(z, layers=len(self) - 1)]

    def relative_residual(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``||G(z) - x||_2 / ||x||_2`` per sample (:func:`~ganinvert.tolerances.relative_residual`),
        for flat ``z`` (B, k) and ``x`` (B, n)."""
        with torch.no_grad():
            return relative_residual(self.walk(z)[-1].out, x)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)``: ``(B, *in_shape) -> (B, *out_shape)``."""
        return self.forward_all(z)[-1].reshape(z.shape[0], *self.out_shape)

    __call__ = forward

    def observe(self, index: torch.Tensor) -> "Chain":
        """The chain whose output is only the flat output entries ``index`` (partial
        observations: the last layer keeps those rows, every other layer is unchanged)."""
        last = self.layers[-1]
        index = index.to(device=self.device)
        sel = Layer(RowSelect(last.op, index), last.bias[index], last.act, (int(index.numel()),))
        return Chain(self.layers[:-1] + (sel,), self.in_shape)

    def describe(self) -> str:
        """One line per layer: shapes, operator type and activation."""
        lines = [f"Chain: latent {self.in_shape} -> image {self.out_shape}"]
        k = self.in_dim
        for i, layer in enumerate(self.layers):
            lines.append(f"  [{i}] {type(layer.op).__name__} {k} -> {layer.op.out_dim} "
                         f"{layer.out_shape}, {layer.act!r}")
            k = layer.op.out_dim
        return "\n".join(lines)
