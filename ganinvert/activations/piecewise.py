"""The piecewise-linear activations: ReLU, LeakyReLU and PReLU (one slope per unit), Hardtanh
and ReLU6."""

from __future__ import annotations

import torch

from .base import _INF, Activation, RowBounds

class ReLU(Activation):
    name = "relu"
    range = (0.0, _INF)
    piecewise_linear = kinked = noisy_rows = flat = relu_like = True
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
    """``p`` where ``p >= 0``, ``a p`` below, ``a > 0``: bijective, so every row is an equality. ``a`` is
    one number, or one per unit (``(n,)``, ``nn.PReLU``'s learned slopes spread over the units)."""

    name = "leaky_relu"
    piecewise_linear = kinked = noisy_rows = True

    def __init__(self, negative_slope: float | torch.Tensor = 0.01) -> None:
        a = negative_slope
        if not bool((torch.as_tensor(a) > 0).all()):
            low = float(torch.as_tensor(a).min())
            raise ValueError(f"LeakyReLU negative_slope must be > 0 to be invertible, got {low:g}")
        self.negative_slope = a.detach().to(torch.float64).flatten() if isinstance(a, torch.Tensor) else float(a)

    def _a(self, like: torch.Tensor) -> torch.Tensor:
        """The slope(s) broadcastable against ``like`` (B, n), in its dtype and device."""
        a = self.negative_slope
        return a.to(like) if isinstance(a, torch.Tensor) else torch.full_like(like[:1], a)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.where(p >= 0, p, p * self._a(p))

    def bounds(self, y: torch.Tensor, *, tol: torch.Tensor) -> RowBounds:
        # Bijective: every row is an equality; the negative branch is scaled back by 1/alpha,
        # and weighted by alpha so that misfit stays in output units.
        neg, a = y < 0, self._a(y)
        p = torch.where(neg, y / a, y)
        w = torch.where(neg, a.expand_as(y), torch.ones_like(y))
        return RowBounds(lo=p, hi=p, weight=w)

    def threshold_bounds(self, y: torch.Tensor, tau: torch.Tensor) -> RowBounds:
        # y > tau: the positive branch; y < -tau: the negative one, scaled by 1/alpha (weight
        # alpha keeps the misfit in output units); in between: either branch
        a = self._a(y)
        pos, neg = y > tau, y < -tau
        lo = torch.where(pos, y, torch.where(neg, y / a, (y - tau) / a))
        hi = torch.where(pos, y, torch.where(neg, y / a, y + tau))
        return RowBounds(lo=lo, hi=hi, weight=torch.where(neg, a.expand_as(y), torch.ones_like(y)))

    def relax_rows(self, y: torch.Tensor, tau: torch.Tensor) -> tuple[RowBounds, torch.Tensor]:
        # rows with y + tau < 0 bound the negative branch, A u + b <= (y + tau) / alpha (weight
        # alpha, output units); rows with y <= -2 tau join the objective with weight alpha |y|
        a = self._a(y)
        v = y + tau
        hi = torch.where(v >= 0, v, v / a)
        w = torch.where(v >= 0, torch.ones_like(y), a.expand_as(y))
        g = torch.where(y >= 2 * tau, y, torch.where(y <= -2 * tau, a * y.abs(), torch.zeros_like(y)))
        return RowBounds(lo=torch.full_like(y, -_INF), hi=hi, weight=w), g

    def branch_slope(self, on: torch.Tensor, *, like: torch.Tensor) -> torch.Tensor:
        return torch.where(on, torch.ones_like(like), self._a(like).expand_as(like))

    def _key(self) -> tuple:
        a = self.negative_slope
        return (type(self), tuple(a.tolist()) if isinstance(a, torch.Tensor) else a)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LeakyReLU) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        a = self.negative_slope
        if isinstance(a, torch.Tensor):
            return f"PReLU({a.numel()} slopes in [{float(a.min()):.3g}, {float(a.max()):.3g}])"
        return f"LeakyReLU({a:g})"


class Hardtanh(Activation):
    """``clamp(p, lo, hi)`` (``nn.Hardtanh``; ``nn.ReLU6`` is ``lo, hi = 0, 6``): an equality inside
    the range, a one-sided row where the output sits at an end. Its kinks are at ``lo`` and ``hi``,
    not at 0, so it is not one of the activation-pattern LP's two-branch activations."""

    name = "hardtanh"
    flat = True

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0) -> None:
        if not min_val < max_val:
            raise ValueError(f"Hardtanh needs min_val < max_val, got {min_val:g} and {max_val:g}")
        self.range = (float(min_val), float(max_val))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return p.clamp(*self.range)

    def bounds(self, y: torch.Tensor, *, tol: torch.Tensor) -> RowBounds:
        lo_r, hi_r = self.range
        low, high = y <= lo_r + tol, y >= hi_r - tol
        lo = torch.where(low, torch.full_like(y, -_INF), torch.where(high, torch.full_like(y, hi_r), y))
        hi = torch.where(high, torch.full_like(y, _INF), torch.where(low, torch.full_like(y, lo_r), y))
        return RowBounds(lo=lo, hi=hi, weight=torch.ones_like(y))

    def inverse(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return y  # slope 1 inside the range, the only rows it pins

    def __repr__(self) -> str:
        return f"Hardtanh({self.range[0]:g}, {self.range[1]:g})"
