"""Elementwise activations of the chain and how each one is undone.

For a layer ``y = phi(p)``, ``p = A u + b``, an activation turns an observed ``y`` into
per-row bounds ``lo <= p <= hi`` on the pre-activation (``lo == hi`` where ``p`` is
determined, a one-sided bound where ``phi`` is flat: ReLU zeros, saturated Tanh/Sigmoid), plus
per-row weights ``phi'(p)`` so that solvers measure misfit in output units to first order.
Every tensor here is flat ``(B, n)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_INF = math.inf
_MIN_WEIGHT = 1e-2


@dataclass(frozen=True)
class RowBounds:
    """Pre-activation bounds implied by an observation.

    Attributes:
        lo, hi: ``(B, n)``; ``-inf`` / ``+inf`` where a side is unbounded.
        weight: ``(B, n)`` positive row weights (1 for one-sided rows).
    """

    lo: torch.Tensor
    hi: torch.Tensor
    weight: torch.Tensor

    @property
    def eq(self) -> torch.Tensor:
        """``(B, n)`` bool: rows where the pre-activation is pinned (lo == hi)."""
        return self.lo == self.hi


class Activation:
    """Base class. Subclasses define ``forward``, ``range`` and ``bounds``."""

    name = "activation"
    #: closed range of the output, used as bounds on the next layer's input
    range: tuple[float, float] = (-_INF, _INF)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def bounds(self, y: torch.Tensor, *, tol: torch.Tensor) -> RowBounds:
        """Pre-activation bounds for observation ``y`` (B, n); ``tol`` (B, 1) absolute."""
        raise NotImplementedError

    def out_of_range(self, y: torch.Tensor, *, tol: torch.Tensor) -> torch.Tensor:
        """``(B,)`` bool: samples with a value outside ``range`` by more than ``tol``."""
        lo, hi = self.range
        return ((y < lo - tol) | (y > hi + tol)).any(dim=-1)

    def range_hint(self) -> str:
        lo, hi = self.range
        return f"values in [{lo:g}, {hi:g}]"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))


def _pinned(p: torch.Tensor) -> RowBounds:
    return RowBounds(lo=p, hi=p, weight=torch.ones_like(p))


class Identity(Activation):
    name = "identity"

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return p

    def bounds(self, y: torch.Tensor, *, tol: torch.Tensor) -> RowBounds:
        return _pinned(y)


class ReLU(Activation):
    name = "relu"
    range = (0.0, _INF)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.relu(p)

    def bounds(self, y: torch.Tensor, *, tol: torch.Tensor) -> RowBounds:
        on = y > tol
        lo = torch.where(on, y, torch.full_like(y, -_INF))
        hi = torch.where(on, y, torch.zeros_like(y))
        return RowBounds(lo=lo, hi=hi, weight=torch.ones_like(y))

    def range_hint(self) -> str:
        return "non-negative values"


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        if not negative_slope > 0:
            raise ValueError(
                f"LeakyReLU negative_slope must be > 0 to be invertible, got {negative_slope}")
        self.negative_slope = float(negative_slope)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.where(p >= 0, p, p * self.negative_slope)

    def bounds(self, y: torch.Tensor, *, tol: torch.Tensor) -> RowBounds:
        # Bijective: every row is an equality; the negative branch is scaled back by 1/alpha,
        # and weighted by alpha so that misfit stays in output units.
        neg = y < 0
        p = torch.where(neg, y / self.negative_slope, y)
        w = torch.where(neg, torch.full_like(y, self.negative_slope), torch.ones_like(y))
        return RowBounds(lo=p, hi=p, weight=w)

    def __repr__(self) -> str:
        return f"LeakyReLU({self.negative_slope:g})"


class _Saturating(Activation):
    """Tanh and Sigmoid: invertible inside the range, one-sided bounds where saturated."""

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _slope(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def bounds(self, y: torch.Tensor, *, tol: torch.Tensor) -> RowBounds:
        lo_r, hi_r = self.range
        # Near the ends the inverse is ill-conditioned (d phi^-1/dy ~ 1/(1-y)); within
        # sqrt(eps) of an end the value only says "saturated", a one-sided bound.
        sat = math.sqrt(torch.finfo(y.dtype).eps)
        high = y >= hi_r - sat
        low = y <= lo_r + sat
        inner = ~(high | low)
        p = self._inverse(y.clamp(lo_r + sat, hi_r - sat))
        p_hi = torch.full_like(y, self._inverse(torch.tensor(hi_r - sat, dtype=torch.float64)).item())
        p_lo = torch.full_like(y, self._inverse(torch.tensor(lo_r + sat, dtype=torch.float64)).item())
        ninf, pinf = torch.full_like(y, -_INF), torch.full_like(y, _INF)
        lo = torch.where(inner, p, torch.where(high, p_hi, ninf))
        hi = torch.where(inner, p, torch.where(low, p_lo, pinf))
        # Output-space weights phi'(p), floored at 1e-2: near-saturated pixels (an MNIST
        # background at -0.9999) would otherwise get weights ~1e-8 and ruin the conditioning
        # of the pinned rows; their inverse is still accurate to eps / sat, far below tolerance.
        w = torch.where(inner, (self._slope(y) / self._slope_max).clamp(min=_MIN_WEIGHT), torch.ones_like(y))
        return RowBounds(lo=lo, hi=hi, weight=w)


class Tanh(_Saturating):
    name = "tanh"
    range = (-1.0, 1.0)
    _slope_max = 1.0

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.tanh(p)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.atanh(y)

    def _slope(self, y: torch.Tensor) -> torch.Tensor:
        return 1 - y * y

    def range_hint(self) -> str:
        return "values in [-1, 1] (for 8-bit images use x / 127.5 - 1)"


class Sigmoid(_Saturating):
    name = "sigmoid"
    range = (0.0, 1.0)
    _slope_max = 0.25

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(p)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.logit(y)

    def _slope(self, y: torch.Tensor) -> torch.Tensor:
        return y * (1 - y)

    def range_hint(self) -> str:
        return "values in [0, 1] (for 8-bit images use x / 255)"
