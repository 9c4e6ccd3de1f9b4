"""The activation base class: per-row bounds an observation implies, and the identity."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InvalidInputError
from ..tolerances import target_scale

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

    def unweighted(self) -> "RowBounds":
        """The same intervals, every row weighing 1: the misfit in the pre-activation's own units,
        which Levenberg-Marquardt descends (:mod:`ganinvert.search.lm`)."""
        return RowBounds(lo=self.lo, hi=self.hi, weight=torch.ones_like(self.weight))

    def misfit(self, p: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` how far ``p`` lies outside ``[lo, hi]``, signed (above positive) and weighted;
        zero on the rows it satisfies. Its squared sum is the pre-activation loss of Adam and
        Levenberg-Marquardt (whose bounds, :meth:`Activation.search_bounds`, may weigh 1)."""
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
    #: ``max(p, 0)`` exactly: a hidden unit the global-uniqueness MILP encodes (:mod:`ganinvert.lp.milp`)
    relu_like = False
    #: as the output activation, has the noisy LPs' rows (:meth:`threshold_bounds`, :meth:`relax_rows`)
    noisy_rows = False
    #: as the output activation, has flat pieces (a ReLU's zeros, a Hardtanh's ends) where the
    #: pixel loss has no gradient to leave by: the pixel fit minimises the pre-activation misfit
    #: (:meth:`fit_bounds`), which is zero exactly where the pixel loss is
    flat = False
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

    def search_bounds(self, y: torch.Tensor) -> RowBounds:
        """The rows Levenberg-Marquardt descends for an observation ``y`` (B, n)
        (:mod:`ganinvert.search.lm`): :meth:`fit_bounds` here. A saturating activation reads ``y``
        at the precision its values carry and weighs every row 1 (docs/design.md §3.7)."""
        return self.fit_bounds(y)

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

    def region_bounds(self, on: torch.Tensor, *, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lo, hi)`` (B, n) on a hidden unit's pre-activation that keep it on the branch ``on`` fixes:
        the region rows of the activation-pattern LP (``p >= 0`` on, ``p <= 0`` off); unbounded where
        the activation has no kink."""
        inf, zero = torch.full_like(like, _INF), torch.zeros_like(like)
        if not self.kinked:
            return -inf, inf
        return torch.where(on, zero, -inf), torch.where(on, inf, zero)

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
