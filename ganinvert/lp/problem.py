"""The one LP formulation every solver here works on.

For a layer ``y = phi(A u + b)`` and an observation ``y``, the activation gives per-row bounds
``lo <= A u + b <= hi`` and weights ``w``; the layer input lies in a box ``[u_lo, u_hi]`` (the
range of the previous activation: ``[0, inf)`` after a ReLU, free for the latent). The LP is::

    minimise  t
    s.t.      w_j (lo_j - (A u + b)_j) <= t,   w_j ((A u + b)_j - hi_j) <= t,   (finite sides)
              u_lo <= u <= u_hi,   t >= 0

so ``t* = 0`` exactly when the observation has a pre-image (the realizable case: the pre-image
is the polyhedron of DESIGN.md 2) and ``t*`` is the smallest weighted l_inf misfit otherwise
(the noisy l_inf LP of DESIGN.md 4 with the thresholds folded into ``lo``/``hi``). The problem
is always feasible, which keeps the interior-point method free of infeasibility detection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LayerProblem:
    """A batch of layer LPs sharing one operator.

    Attributes:
        A: ``(n, k)`` float64, shared by the batch.
        b: ``(n,)``.
        lo, hi: ``(B, n)`` bounds on ``A u + b`` (``+-inf`` where open).
        w: ``(B, n)`` positive row weights.
        u_lo, u_hi: scalar bounds on every input coordinate (``+-inf`` where open).
    """

    A: torch.Tensor
    b: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    w: torch.Tensor
    u_lo: float = -math.inf
    u_hi: float = math.inf

    @property
    def batch(self) -> int:
        return self.lo.shape[0]

    @property
    def eq(self) -> torch.Tensor:
        """``(B, n)`` rows pinned to one value."""
        return self.lo == self.hi

    def select(self, idx: torch.Tensor) -> "LayerProblem":
        """The sub-batch ``idx`` (bool mask or indices)."""
        return LayerProblem(self.A, self.b, self.lo[idx], self.hi[idx], self.w[idx],
                            self.u_lo, self.u_hi)

    def row_slack(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted slacks ``(w (p - lo), w (hi - p))``, each ``(B, n)``; ``+inf`` on open sides,
        negative where violated; ``p = A u + b`` for ``u`` (B, k)."""
        p = u @ self.A.T + self.b  # (B, n)
        return self.w * (p - self.lo), self.w * (self.hi - p)

    def violation(self, u: torch.Tensor) -> torch.Tensor:
        """``(B,)``: the largest weighted row violation, or bound violation of ``u``; 0 if none."""
        s_lo, s_hi = self.row_slack(u)
        worst = torch.minimum(s_lo, s_hi).amin(dim=-1).clamp(max=0).neg()
        below = (self.u_lo - u).amax(dim=-1) if math.isfinite(self.u_lo) else torch.zeros_like(worst)
        above = (u - self.u_hi).amax(dim=-1) if math.isfinite(self.u_hi) else torch.zeros_like(worst)
        return torch.stack([worst, below, above]).amax(dim=0).clamp(min=0)

    def clamp(self, u: torch.Tensor) -> torch.Tensor:
        """``u`` pushed into the input box (no-op on free layers)."""
        if math.isinf(self.u_lo) and math.isinf(self.u_hi):
            return u
        return u.clamp(min=None if math.isinf(self.u_lo) else self.u_lo,
                       max=None if math.isinf(self.u_hi) else self.u_hi)


@dataclass
class LPSolution:
    """What a solver returns for a sub-batch.

    Attributes:
        u: ``(B, k)`` the layer input found.
        t: ``(B,)`` optimal misfit (0 for a pre-image).
        ok: ``(B,)`` bool: the solver reached optimality.
        messages: per sample, the solver's word when not ok.
        iterations: solver iterations (the largest in the batch for batched solvers).
    """

    u: torch.Tensor
    t: torch.Tensor
    ok: torch.Tensor
    messages: list[str]
    iterations: int = 0
