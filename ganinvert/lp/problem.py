"""The one LP formulation every solver here works on.

For a layer ``y = phi(A u + b)`` and an observation ``y``, the activation gives per-row bounds
``lo <= A u + b <= hi`` and weights ``w``; the layer input lies in a box ``[u_lo, u_hi]`` (the
range of the previous activation: ``[0, inf)`` after a ReLU, free for the latent). The LP is::

    minimise  t + c^T u
    s.t.      w_j (lo_j - (A u + b)_j) <= t,   w_j ((A u + b)_j - hi_j) <= t,   (finite sides)
              u_lo <= u <= u_hi,   t >= 0

With no cost (``c = 0``), ``t* = 0`` exactly when the observation has a pre-image (the
realizable case: the pre-image is the polyhedron of docs/design.md §2) and ``t*`` is the smallest
weighted l_inf misfit otherwise (the noisy l_inf LP of docs/design.md §4.1 with the thresholds folded
into ``lo``/``hi``). With a cost it is the exact-penalty form of ``min c^T u`` over the
polyhedron (the l_1 "relax" LP of docs/design.md §4.2): ``t* = 0`` at the optimum whenever the
polyhedron is non-empty and the row multipliers of ``min c^T u`` sum to less than 1, which the
caller ensures by scaling ``c``; ``t* > 0`` flags an empty polyhedron (or a cost scaled too
large). The problem is always feasible, which keeps the interior-point method free of
infeasibility detection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

#: largest outer-product table ``(n, k*k)`` kept for Gram matrices (512 MiB in float64)
_MAX_OUTER = 2**26
#: largest layer input whose ``k x k`` normal matrix is built per sample: the one size limit of the
#: dense layer LP (``Layerwise(max_lp_dim=...)``'s default) and of the derivative through a layer
#: (:mod:`ganinvert.gradients`); 32 MiB per sample in float64
MAX_DENSE_INPUT = 2048


class WeightedGram:
    """``A^T diag(w) A`` for a batch of row weights, the one dense kernel of every solver here.

    Computed as a single GEMM ``w @ O`` against the upper triangles of the rows' outer products
    ``O[j] = triu(a_j a_j^T)``, built once per operator: about 3x faster than broadcasting a
    ``(B, k, n)`` temporary (measured at 500x100 and 784x60, batch 1000), which remains the
    fallback when ``O`` would be too large; the triangle halves the GEMM (the interior-point
    method's iterations on the paper's decoder, 784x60, are mostly this product).
    """

    def __init__(self, A: torch.Tensor) -> None:
        self.A = A
        self._outer: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        """``(B, n) -> (B, k, k)``."""
        A = self.A
        n, k = A.shape
        B = w.shape[0]
        if n * k * (k + 1) // 2 <= _MAX_OUTER:
            if self._outer is None:
                i, j = torch.triu_indices(k, k, device=A.device)
                slot = torch.empty(k, k, dtype=torch.long, device=A.device)  # entry (a, b) -> its triangle column
                slot[i, j] = slot[j, i] = torch.arange(i.numel(), device=A.device)
                self._outer = (slot.flatten(), A[:, i] * A[:, j])  # (n, k(k+1)/2): the upper triangles
            slot, outer = self._outer
            return (w @ outer).index_select(1, slot).view(B, k, k)
        out = torch.empty(B, k, k, dtype=A.dtype, device=A.device)
        chunk = max(1, (1 << 22) // (k * n))  # bounds the (chunk, k, n) temporary
        for s in range(0, B, chunk):
            out[s:s + chunk] = (A.T.unsqueeze(0) * w[s:s + chunk].unsqueeze(1)) @ A
        return out


def apply_rows(A: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``A u`` per sample: ``(B, k) -> (B, n)`` for a shared ``A`` (n, k) or per-sample (B, n, k)."""
    return u @ A.T if A.dim() == 2 else torch.bmm(A, u.unsqueeze(-1)).squeeze(-1)


def apply_rows_t(A: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``A^T v`` per sample: ``(B, n) -> (B, k)``."""
    return v @ A if A.dim() == 2 else torch.bmm(v.unsqueeze(1), A).squeeze(1)


def weighted_gram_batched(A: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``A_i^T diag(w_i) A_i`` for per-sample ``A`` (B, n, k): ``(B, k, k)``."""
    return torch.bmm(A.transpose(1, 2) * w.unsqueeze(1), A)


@dataclass(frozen=True)
class LayerProblem:
    """A batch of layer LPs sharing one operator (or each with its own).

    Attributes:
        A: ``(n, k)`` float64, shared by the batch; or ``(B, n, k)``, one per sample (the
            activation-pattern LP, whose rows depend on each sample's pattern).
        b: ``(n,)``, or ``(B, n)`` with a per-sample ``A``.
        lo, hi: ``(B, n)`` bounds on ``A u + b`` (``+-inf`` where open).
        w: ``(B, n)`` positive row weights.
        u_lo, u_hi: scalar bounds on every input coordinate (``+-inf`` where open).
        cost: ``(B, k)`` linear cost ``c`` on ``u``, or None (the pure misfit LP).
    """

    A: torch.Tensor
    b: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    w: torch.Tensor
    u_lo: float = -math.inf
    u_hi: float = math.inf
    cost: torch.Tensor | None = None
    gram: WeightedGram = field(default=None, repr=False, compare=False)  # shared by sub-batches

    def __post_init__(self) -> None:
        if self.gram is None and self.A.dim() == 2:
            object.__setattr__(self, "gram", WeightedGram(self.A))

    @property
    def batch(self) -> int:
        return self.lo.shape[0]

    @property
    def eq(self) -> torch.Tensor:
        """``(B, n)`` rows pinned to one value."""
        return self.lo == self.hi

    def select(self, idx: torch.Tensor) -> "LayerProblem":
        """The sub-batch ``idx`` (bool mask or indices)."""
        cost = None if self.cost is None else self.cost[idx]
        if self.A.dim() == 3:
            return LayerProblem(self.A[idx], self.b[idx], self.lo[idx], self.hi[idx], self.w[idx],
                                self.u_lo, self.u_hi, cost)
        return LayerProblem(self.A, self.b, self.lo[idx], self.hi[idx], self.w[idx],
                            self.u_lo, self.u_hi, cost, self.gram)

    def row_slack(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted slacks ``(w (p - lo), w (hi - p))``, each ``(B, n)``; ``+inf`` on open sides,
        negative where violated; ``p = A u + b`` for ``u`` (B, k)."""
        p = apply_rows(self.A, u) + self.b  # (B, n)
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
        dual: ``(B, n)`` the multipliers of the row constraints (both sides summed; the
            objective's multipliers sum to 1), where the solver reports them (the IPM), else None.
    """

    u: torch.Tensor
    t: torch.Tensor
    ok: torch.Tensor
    messages: list[str]
    iterations: int = 0
    dual: torch.Tensor | None = None
