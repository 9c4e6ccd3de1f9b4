"""HiGHS, one sample at a time: the reference solver the batched IPM is tested against, and the
solver of the small cone LPs of the uniqueness test.

Presolve is off: on these dense LPs it alone costs seconds per problem (DESIGN.md 2).
"""

from __future__ import annotations

import math

import highspy
import numpy as np
import scipy.sparse as sp
import torch

from .problem import LayerProblem, LPSolution


def _highs() -> highspy.Highs:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")
    return h


def solve_lp(c: np.ndarray, A: np.ndarray, row_lo: np.ndarray, row_hi: np.ndarray,
             col_lo: np.ndarray, col_hi: np.ndarray) -> tuple[np.ndarray | None, str]:
    """``min c^T x  s.t.  row_lo <= A x <= row_hi,  col_lo <= x <= col_hi`` (inf allowed).

    Returns:
        ``(x, "")`` at optimality, else ``(None, HiGHS's model status)``.
    """
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = A.shape[1], A.shape[0]
    lp.col_cost_ = np.asarray(c, dtype=np.float64)
    lp.col_lower_ = np.clip(col_lo, -inf, inf)
    lp.col_upper_ = np.clip(col_hi, -inf, inf)
    lp.row_lower_ = np.clip(row_lo, -inf, inf)
    lp.row_upper_ = np.clip(row_hi, -inf, inf)
    csc = sp.csc_matrix(A)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr
    lp.a_matrix_.index_ = csc.indices
    lp.a_matrix_.value_ = csc.data
    h = _highs()
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        return None, h.modelStatusToString(status)
    return np.array(h.getSolution().col_value), ""


def solve_highs(prob: LayerProblem, *, u0: torch.Tensor | None = None, tol: float = 1e-9,
                max_iter: int | None = None) -> LPSolution:
    """Solve each sample's layer LP with HiGHS (dual simplex, presolve off).

    ``u0``, ``tol`` and ``max_iter`` are accepted for a uniform solver signature; HiGHS uses its
    own tolerances.
    """
    A = prob.A.detach().cpu().numpy()
    b = prob.b.detach().cpu().numpy()
    n, k = A.shape
    lo, hi, w = (v.detach().cpu().numpy() for v in (prob.lo, prob.hi, prob.w))
    us, ts, oks, msgs = [], [], [], []
    c = np.zeros(k + 1)
    c[-1] = 1.0
    col_lo = np.r_[np.full(k, prob.u_lo), 0.0]
    col_hi = np.r_[np.full(k, prob.u_hi), math.inf]
    for i in range(prob.batch):
        fin_hi, fin_lo = np.isfinite(hi[i]), np.isfinite(lo[i])
        WA = w[i][:, None] * A
        # w (A u + b) - t <= w hi   and   w (A u + b) + t >= w lo
        rows = np.vstack([np.c_[WA[fin_hi], -np.ones(fin_hi.sum())],
                          np.c_[WA[fin_lo], np.ones(fin_lo.sum())]])
        r_hi = np.r_[(w[i] * (hi[i] - b))[fin_hi], np.full(fin_lo.sum(), math.inf)]
        r_lo = np.r_[np.full(fin_hi.sum(), -math.inf), (w[i] * (lo[i] - b))[fin_lo]]
        x, msg = solve_lp(c, rows, r_lo, r_hi, col_lo, col_hi)
        oks.append(x is not None)
        msgs.append(f"HiGHS: {msg}" if msg else "")
        x = np.zeros(k + 1) if x is None else x
        us.append(x[:k])
        ts.append(max(x[k], 0.0))
    dev, dt = prob.A.device, prob.A.dtype
    return LPSolution(u=prob.clamp(torch.tensor(np.array(us), dtype=dt, device=dev).reshape(-1, k)),
                      t=torch.tensor(ts, dtype=dt, device=dev),
                      ok=torch.tensor(oks, dtype=torch.bool, device=dev), messages=msgs)
