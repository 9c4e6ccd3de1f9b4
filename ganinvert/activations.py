"""Elementwise activations of the chain and how each one is undone.

For a layer ``y = phi(p)``, ``p = A u + b``, an activation turns an observed ``y`` into
per-row bounds ``lo <= p <= hi`` on the pre-activation (``lo == hi`` where ``p`` is
determined, a one-sided bound where ``phi`` is flat: ReLU zeros, saturated Tanh/Sigmoid), plus
per-row weights ``phi'(p)`` so that solvers measure misfit in output units to first order.
Every tensor here is flat ``(B, n)``.

Everything that differs per activation lives on its class, so adding one touches this file
only: the exact layer rows (:meth:`Activation.bounds`), the noisy rows of the thresholded l_inf
LP (:meth:`Activation.threshold_bounds`) and of the l_1 relax LP
(:meth:`Activation.relax_rows`), the branch slopes of the activation-pattern LP
(:attr:`Activation.piecewise_linear`, :meth:`Activation.branch_slope`), which observations
identify nothing (:meth:`Activation.uninformative`) and how much a layer must expand to pin its
input (:attr:`Activation.min_expansion`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import InvalidInputError
from .tolerances import target_scale

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

    def rows(self, idx) -> "RowBounds":
        """The bounds of some samples (``idx``: anything that indexes the batch dimension)."""
        return RowBounds(lo=self.lo[idx], hi=self.hi[idx], weight=self.weight[idx])

    def misfit(self, p: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` how far ``p`` lies outside ``[lo, hi]``, signed (above positive) and weighted;
        zero on the rows it satisfies. Its squared sum is the pre-activation loss of Adam and
        Levenberg-Marquardt."""
        return self.weight * ((p - self.hi).clamp(min=0) - (self.lo - p).clamp(min=0))


class Activation:
    """Base class. Subclasses define ``forward``, ``range`` and ``bounds``; the noisy rows and
    the pattern-LP slopes where the activation supports them."""

    name = "activation"
    #: closed range of the output, used as bounds on the next layer's input
    range: tuple[float, float] = (-_INF, _INF)
    #: piecewise linear with its branches split at ``p = 0``: as a hidden activation, the
    #: activation-pattern LP can fix its branch per unit
    piecewise_linear = False
    #: more than one branch: a hidden unit's branch is a constraint (a region row) of the pattern LP
    kinked = False
    #: as the output activation, has the noisy LPs' rows (:meth:`threshold_bounds`, :meth:`relax_rows`)
    noisy_rows = False
    #: output/input width ratio from which a layer's pre-image is expected to be a single point
    #: (a rule of thumb for random-like weights, used by :func:`ganinvert.inspect`)
    min_expansion = 1.0

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def bounds(self, y: torch.Tensor, *, tol: torch.Tensor) -> RowBounds:
        """Pre-activation bounds for observation ``y`` (B, n); ``tol`` (B, 1) absolute."""
        raise NotImplementedError

    def fit_bounds(self, y: torch.Tensor) -> RowBounds:
        """:meth:`bounds` at the tolerance a least-squares fit to an exact observation uses:
        ``1e-9`` of the sample's scale (at least 1)."""
        return self.bounds(y, tol=1e-9 * target_scale(y, keepdim=True))

    def active_rows(self, p: torch.Tensor) -> RowBounds:
        """The exact rows at the pre-activation ``p`` (B, n) itself: :meth:`bounds` of
        ``forward(p)`` at zero tolerance. Its ``eq`` rows are the layer's active equations, the
        ones :mod:`ganinvert.gradients` differentiates (with these weights held fixed)."""
        return self.bounds(self.forward(p), tol=torch.zeros_like(p[:, :1]))

    def pinned_rows(self, p: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pinned (B, n) bool, weight (B, n))``: the rows :meth:`active_rows` pins at ``p`` with a
        finite pre-activation, and, given an observation ``y``, that ``y`` pins too (not a
        saturated pixel)."""
        rows = self.active_rows(p)
        pinned = rows.eq & torch.isfinite(rows.lo)
        if y is not None:
            pinned &= self.bounds(y, tol=torch.zeros_like(y[:, :1])).eq
        return pinned, rows.weight

    def inverse(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """The pre-activation of ``y`` (B, n) on the branch the pre-activation ``p`` lies on,
        differentiable in ``y``; meaningful on the rows :meth:`active_rows` pins."""
        slope = self.branch_slope(p >= 0, like=y)
        return y / torch.where(slope > 0, slope, torch.ones_like(slope))  # flat branches: unused rows

    def threshold_bounds(self, y: torch.Tensor, tau: torch.Tensor) -> RowBounds:
        """Rows of the thresholded l_inf LP for a noisy observation ``y`` (B, n) at threshold
        ``tau`` (B, 1): rows observed clearly on one branch (``|y| > tau``) are fitted, the others
        bounded (:func:`ganinvert.lp.noisy.threshold_problem`)."""
        raise self._no_noisy()

    def relax_rows(self, y: torch.Tensor, tau: torch.Tensor) -> tuple[RowBounds, torch.Tensor]:
        """Rows of the l_1 relax LP, ``act(A u + b) <= y + tau`` row-wise, and the objective's
        per-row weights ``g`` (B, n) on the rows it pushes up to their bounds
        (:func:`ganinvert.lp.noisy.relax_problem`)."""
        raise self._no_noisy()

    def branch_slope(self, on: torch.Tensor, *, like: torch.Tensor) -> torch.Tensor:
        """Slope of each unit on the branch its pattern fixes (``on``: ``p >= 0``), in ``like``'s
        dtype and device; only for :attr:`piecewise_linear` activations."""
        raise TypeError(f"{self!r} is not piecewise linear: the activation-pattern LP does not apply to it")

    def uninformative(self, y: torch.Tensor) -> torch.Tensor:
        """``(B,)`` bool: observations that identify nothing (every latent of a whole cone maps to
        them); :attr:`uninformative_reason` says why."""
        return torch.zeros(y.shape[0], dtype=torch.bool, device=y.device)

    uninformative_reason = ""

    def _no_noisy(self) -> InvalidInputError:
        return InvalidInputError(f"Expected: ReLU, LeakyReLU or no activation for noisy inversion, Got: {self!r}. "
                                 "Hint: for Tanh/Sigmoid outputs use method='hybrid' or 'adam'")

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
    piecewise_linear = noisy_rows = True

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return p

    def bounds(self, y: torch.Tensor, *, tol: torch.Tensor) -> RowBounds:
        return _pinned(y)

    def threshold_bounds(self, y: torch.Tensor, tau: torch.Tensor) -> RowBounds:
        return RowBounds(lo=y.clone(), hi=y.clone(), weight=torch.ones_like(y))

    def relax_rows(self, y: torch.Tensor, tau: torch.Tensor) -> tuple[RowBounds, torch.Tensor]:
        # linear rows keep the band |A u + b - y| <= tau and carry no objective
        return RowBounds(lo=y - tau, hi=y + tau, weight=torch.ones_like(y)), torch.zeros_like(y)

    def branch_slope(self, on: torch.Tensor, *, like: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(like)


class ReLU(Activation):
    name = "relu"
    range = (0.0, _INF)
    piecewise_linear = kinked = noisy_rows = True
    # about half the rows of a random layer are positive, and the positive rows must pin the input
    min_expansion = 2.0
    uninformative_reason = ("x is all zeros: for a ReLU-output generator every latent in a whole "
                            "cone maps to it, so it identifies nothing; Expected some positive values")

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.relu(p)

    def bounds(self, y: torch.Tensor, *, tol: torch.Tensor) -> RowBounds:
        on = y > tol
        lo = torch.where(on, y, torch.full_like(y, -_INF))
        hi = torch.where(on, y, torch.zeros_like(y))
        return RowBounds(lo=lo, hi=hi, weight=torch.ones_like(y))

    def threshold_bounds(self, y: torch.Tensor, tau: torch.Tensor) -> RowBounds:
        # y > tau: fitted, |a u + b - y| <= t; else bounded above, a u + b <= y + t
        on = y > tau
        return RowBounds(lo=torch.where(on, y, torch.full_like(y, -_INF)), hi=y.clone(), weight=torch.ones_like(y))

    def relax_rows(self, y: torch.Tensor, tau: torch.Tensor) -> tuple[RowBounds, torch.Tensor]:
        hi = (y + tau).clamp(min=0)  # A u + b <= max(0, y + tau)
        g = torch.where(y >= 2 * tau, y, torch.zeros_like(y))
        return RowBounds(lo=torch.full_like(y, -_INF), hi=hi, weight=torch.ones_like(y)), g

    def branch_slope(self, on: torch.Tensor, *, like: torch.Tensor) -> torch.Tensor:
        return on.to(like.dtype)

    def uninformative(self, y: torch.Tensor) -> torch.Tensor:
        return ~(y > 0).any(dim=-1)

    def range_hint(self) -> str:
        return "non-negative values"


class LeakyReLU(Activation):
    name = "leaky_relu"
    piecewise_linear = kinked = noisy_rows = True

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

    def threshold_bounds(self, y: torch.Tensor, tau: torch.Tensor) -> RowBounds:
        # y > tau: the positive branch; y < -tau: the negative one, scaled by 1/alpha (weight
        # alpha keeps the misfit in output units); in between: either branch
        a = self.negative_slope
        pos, neg = y > tau, y < -tau
        lo = torch.where(pos, y, torch.where(neg, y / a, (y - tau) / a))
        hi = torch.where(pos, y, torch.where(neg, y / a, y + tau))
        return RowBounds(lo=lo, hi=hi, weight=torch.where(neg, torch.full_like(y, a), torch.ones_like(y)))

    def relax_rows(self, y: torch.Tensor, tau: torch.Tensor) -> tuple[RowBounds, torch.Tensor]:
        # rows with y + tau < 0 bound the negative branch, A u + b <= (y + tau) / alpha (weight
        # alpha, output units); rows with y <= -2 tau join the objective with weight alpha |y|
        a = self.negative_slope
        v = y + tau
        hi = torch.where(v >= 0, v, v / a)
        w = torch.where(v >= 0, torch.ones_like(y), torch.full_like(y, a))
        g = torch.where(y >= 2 * tau, y, torch.where(y <= -2 * tau, a * y.abs(), torch.zeros_like(y)))
        return RowBounds(lo=torch.full_like(y, -_INF), hi=hi, weight=w), g

    def branch_slope(self, on: torch.Tensor, *, like: torch.Tensor) -> torch.Tensor:
        return torch.where(on, torch.ones_like(like), torch.full_like(like, self.negative_slope))

    def __repr__(self) -> str:
        return f"LeakyReLU({self.negative_slope:g})"


class _Saturating(Activation):
    """Tanh and Sigmoid: invertible inside the range, one-sided bounds where saturated."""

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _slope(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        lo_r, hi_r = self.range
        sat = math.sqrt(torch.finfo(y.dtype).eps)  # saturated rows are never pinned (bounds)
        return self._inverse(y.clamp(lo_r + sat, hi_r - sat))

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
