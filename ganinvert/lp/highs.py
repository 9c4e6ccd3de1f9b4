"""HiGHS, one sample at a time: the reference solver the batched IPM is tested against, and the
solver of the small cone LPs of the uniqueness test.

Presolve is off: on these dense LPs it alone costs seconds per problem (docs/design.md §2.2).
HiGHS is reached through ``scipy.optimize.linprog``: the same solver and speed as ``highspy``
(measured: 36 ms per 784x60 layer LP both ways), without the banner ``highspy`` writes to
stdout on first use, which a library must not do.
"""

from __future__ import annotations

import math
from typing import Callable
from typing import Mapping

import numpy as np
import torch
from scipy.optimize import linprog

from .problem import LayerProblem, LPSolution


def solve_lp(c: np.ndarray, A: np.ndarray, row_lo: np.ndarray, row_hi: np.ndarray,
             col_lo: np.ndarray, col_hi: np.ndarray, *, options: Mapping[str, object] | None = None
             ) -> tuple[np.ndarray | None, str]:
    """``min c^T x  s.t.  row_lo <= A x <= row_hi,  col_lo <= x <= col_hi`` (inf allowed).
    ``options``: more of ``scipy.optimize.linprog``'s HiGHS options (presolve stays off).

    Returns:
        ``(x, "")`` at optimality, else ``(None, HiGHS's message)``.
    """
    eq = np.isfinite(row_lo) & (row_lo == row_hi)
    up = np.isfinite(row_hi) & ~eq
    down = np.isfinite(row_lo) & ~eq
    A_ub = np.vstack([A[up], -A[down]])
    b_ub = np.r_[row_hi[up], -row_lo[down]]
    bounds = [(None if math.isinf(lo) else lo, None if math.isinf(hi) else hi)
              for lo, hi in zip(col_lo, col_hi)]
    res = linprog(c, A_ub=A_ub if len(b_ub) else None, b_ub=b_ub if len(b_ub) else None,
                  A_eq=A[eq] if eq.any() else None, b_eq=row_lo[eq] if eq.any() else None,
                  bounds=bounds, method="highs", options={**(options or {}), "presolve": False})
    if res.status != 0:
        return None, res.message
    return np.asarray(res.x), ""


def solve_highs(prob: LayerProblem, *, u0: torch.Tensor | None = None, tol: float | None = None,
                max_iter: int | None = None, stop: Callable[[], bool] | None = None) -> LPSolution:
    """Solve each sample's layer LP with HiGHS (dual simplex, presolve off).

    Args:
        prob: the problems.
        u0: accepted for the solvers' uniform signature; the simplex method starts from its own
            basis, so it is not used.
        tol: HiGHS's primal and dual feasibility tolerance (None: HiGHS's default, 1e-7).
        max_iter: HiGHS's iteration limit per problem (None: none); a sample that reaches it
            comes back with ``ok=False`` and HiGHS's message.
        stop: asked before each sample; once true the samples left come back with ``ok=False``.
    """
    options = {} if max_iter is None else {"maxiter": int(max_iter)}
    if tol is not None:
        options.update(primal_feasibility_tolerance=float(tol), dual_feasibility_tolerance=float(tol))
    A_all = prob.A.detach().cpu().numpy()
    b_all = prob.b.detach().cpu().numpy()
    n, k = A_all.shape[-2:]
    lo, hi, w = (v.detach().cpu().numpy() for v in (prob.lo, prob.hi, prob.w))
    us, ts, oks, msgs = [], [], [], []
    cost = None if prob.cost is None else prob.cost.detach().cpu().numpy()
    col_lo = np.r_[np.full(k, prob.u_lo), 0.0]
    col_hi = np.r_[np.full(k, prob.u_hi), math.inf]
    for i in range(prob.batch):
        A, b = (A_all, b_all) if A_all.ndim == 2 else (A_all[i], b_all[i])  # shared or per sample
        fin_hi, fin_lo = np.isfinite(hi[i]), np.isfinite(lo[i])
        WA = w[i][:, None] * A
        # w (A u + b) - t <= w hi   and   w (A u + b) + t >= w lo
        rows = np.vstack([np.c_[WA[fin_hi], -np.ones(fin_hi.sum())],
                          np.c_[WA[fin_lo], np.ones(fin_lo.sum())]])
        r_hi = np.r_[(w[i] * (hi[i] - b))[fin_hi], np.full(fin_lo.sum(), math.inf)]
        r_lo = np.r_[np.full(fin_hi.sum(), -math.inf), (w[i] * (lo[i] - b))[fin_lo]]
        c = np.r_[np.zeros(k) if cost is None else cost[i], 1.0]  # min t + cost^T u
        x, msg = ((None, "not run: out of time") if stop is not None and stop() else
                  solve_lp(c, rows, r_lo, r_hi, col_lo, col_hi, options=options))
        oks.append(x is not None)
        msgs.append(f"HiGHS: {msg}" if msg else "")
        x = np.zeros(k + 1) if x is None else x
        us.append(x[:k])
        ts.append(max(x[k], 0.0))
    dev, dt = prob.A.device, prob.A.dtype
    return LPSolution(u=prob.clamp(torch.tensor(np.array(us), dtype=dt, device=dev).reshape(-1, k)),
                      t=torch.tensor(ts, dtype=dt, device=dev),
                      ok=torch.tensor(oks, dtype=torch.bool, device=dev), messages=msgs)
