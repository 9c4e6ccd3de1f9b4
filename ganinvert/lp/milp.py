"""Global uniqueness across layers: a MILP over the branches of every hidden ReLU unit
(docs/design.md §3.9), HiGHS through ``scipy.optimize.milp``.

An answer ``z`` whose activation region maps injectively (a positive uniqueness radius,
:mod:`ganinvert.radius`) is, up to tolerance, the only pre-image of ``x`` unless some *other*
activation pattern admits one. The output rows are ``x``'s, each widened by the tolerance the
layer LPs use (``rtol max |x|``, in pre-activation units): the true latent of an ``x = G(z*)``
satisfies them whatever its pattern. With every bias multiplied by a scale ``t >= 0`` the
conditions become homogeneous in ``(z, h_1, ..., h_{L-1}, t)``; the pre-images are the points with
``t > 0`` divided by ``t``. Fixing the scale by ``t + sum of all hidden activations = F`` (``F`` that
sum plus one at ``z``, so ``z`` itself sits at ``t = 1``) bounds ``t`` and every ``h``; the relaxation
(``h >= a``, ``h >= 0``, the output rows times ``t``) then bounds ``z`` and every pre-activation
wherever the rows pin them (an LP per latent coordinate and per unit, HiGHS; a sample whose
relaxation leaves the latent unbounded gets no certificate). With those bounds each unit is the
usual big-M encoding (``h <= a - L (1 - s)``, ``h <= F s``, ``s`` binary), and one more row
excludes ``z``'s own pattern.

Infeasible: no other pattern admits a pre-image at any scale, so ``z`` is the only one (globally;
the solver's tolerances only enlarge the feasible set, so its infeasibility stands). Feasible at
``t >= tau = 1e-3``: the point, divided by its ``t``, is checked as a pre-image (a witness) or
reported unresolved. Feasible only below ``tau``: unresolved (a pre-image a thousand times
further out than ``z``, or a point the tolerances let in; they cannot be told apart).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import Bounds, LinearConstraint, milp

from ..chain import Chain
from ..errors import LayerTooLargeError
from ..linearize import linearize
from ..tolerances import relative_residual, target_scale
from .highs import solve_lp

#: hidden units (binaries) up to which the certificate runs: measured on 2 cores, 20-44 units
#: took 0.2-6 s per sample, the paper's decoder (60) did not finish in 10 s
MAX_UNITS = 32
#: hidden units past which the MILP never runs, even given the time (dense rows of this many columns)
HARD_UNITS = 1024
#: seconds per sample by default
MILP_SECONDS = 2.0
#: the smallest scale a second pre-image may have (see the module doc)
TAU = 1e-3


@dataclass
class GlobalVerdict:
    """Per sample: ``unique`` (B,) bool, proven the only pre-image; ``witness`` (B, k), a second
    pre-image where one was found (nan elsewhere); ``messages``, what was found or why not."""

    unique: torch.Tensor
    witness: torch.Tensor
    messages: list[str]


def why_not(chain: Chain, *, max_units: float = MAX_UNITS) -> str:
    """"" where :func:`certify_global` applies to ``chain``, else why not."""
    hidden = chain.layers[:-1]
    if not hidden:
        return "a single layer: its own certificate is global"
    if not all(layer.act.relu_like for layer in hidden):
        return "a hidden activation is not ReLU (the MILP encodes ReLU units)"
    units = sum(layer.op.out_dim for layer in hidden)
    if units > max_units:
        return f"{units} hidden units, over the {max_units} the MILP is run for"
    return ""


class _Encoding:
    """The chain's dense layers, and per sample its MILP: the relaxation's rows, big-M bounds from
    LPs over them, the branch rows."""

    def __init__(self, chain: Chain) -> None:
        self.A = [layer.op.dense().detach().cpu().double().numpy() for layer in chain.layers]
        self.b = [layer.bias.detach().cpu().double().numpy() for layer in chain.layers]
        self.k, self.n = chain.in_dim, [a.shape[0] for a in self.A[:-1]]
        self.start = np.cumsum([self.k + 1] + [2 * m for m in self.n])  # layer l's h at start[l], its s after
        self.nv = int(self.start[-1])

    def _cols(self, entries, rows: int) -> np.ndarray:
        M = np.zeros((rows, self.nv))
        for col, mat in entries:
            M[:, col:col + mat.shape[1]] = mat
        return M

    def _pre(self, l: int) -> np.ndarray:
        """``(n_l, nv)``: layer ``l``'s pre-activation ``A_l (input) + b_l t`` as rows."""
        inp = (0, self.A[0]) if l == 0 else (int(self.start[l - 1]), self.A[l])
        return self._cols([inp, (self.k, self.b[l][:, None])], self.A[l].shape[0])

    def problem(self, lo: np.ndarray, hi: np.ndarray, pattern: list[np.ndarray], F: float,
                stop: Callable[[], bool]):
        """The MILP for output rows ``lo <= c <= hi`` (per unit of ``t``, infinite where open) and
        ``z``'s ``pattern`` at scale ``F``, ``t`` in ``[0, F]``: ``(constraints, bounds, integrality)``,
        or a string saying why there is none (the relaxation does not bound it, or ``stop()``)."""
        k, n, start = self.k, self.n, self.start
        R, r_lo, r_hi = [], [], []

        def add(M, a, b):
            R.append(M)
            r_lo.append(np.broadcast_to(a, M.shape[:1]))
            r_hi.append(np.broadcast_to(b, M.shape[:1]))

        pres = [self._pre(l) for l in range(len(n))]
        for l, m in enumerate(n):
            add(self._cols([(int(start[l]), np.eye(m))], m) - pres[l], 0.0, np.inf)  # h >= a
        out = self._cols([(int(start[-2]), self.A[-1]), (k, self.b[-1][:, None])], len(lo))
        for side, keep in ((lo, np.isfinite(lo)), (hi, np.isfinite(hi))):
            M = out[keep].copy()
            M[:, k] -= side[keep]  # c - side t
            add(M, *((0.0, np.inf) if side is lo else (-np.inf, 0.0)))
        add(self._cols([(k, np.ones((1, 1)))] + [(int(start[l]), np.ones((1, m))) for l, m in enumerate(n)], 1), F, F)
        lb = np.concatenate([np.full(k, -np.inf), [0.0]] + [np.zeros(2 * m) for m in n])
        ub = np.concatenate([np.full(k, np.inf), [F]] + [np.r_[np.full(m, F), np.ones(m)] for m in n])
        relax = np.vstack(R), np.concatenate(r_lo), np.concatenate(r_hi)

        def lowest(c):  # a bound HiGHS's tolerances cannot have put above the true one
            if stop():
                return math.nan
            x, _ = solve_lp(c, *relax, lb, ub)
            return -np.inf if x is None else float(c @ x) - 1e-7 * (1 + abs(float(c @ x)))

        eye = np.eye(self.nv)[:k]
        lb[:k] = [lowest(e) for e in eye]
        ub[:k] = [-lowest(-e) for e in eye]
        low = [np.array([lowest(row) for row in P]) for P in pres]
        if any(np.isnan(v).any() for v in (lb[:k], ub[:k], *low)):
            return "no global certificate: out of time"
        if not all(np.isfinite(v).all() for v in (lb[:k], ub[:k], *low)):
            return "no global certificate: the LP relaxation does not bound the latent"
        for l, m in enumerate(n):  # h <= a - L (1 - s), h <= F s
            h, s_ = int(start[l]), int(start[l]) + m
            add(self._cols([(h, np.eye(m)), (s_, -np.diag(low[l]))], m) - pres[l], -np.inf, -low[l])
            add(self._cols([(h, np.eye(m)), (s_, -F * np.eye(m))], m), -np.inf, 0.0)
        flip = [(int(start[l]) + m, np.where(p, -1.0, 1.0)[None]) for l, (m, p) in enumerate(zip(n, pattern))]
        add(self._cols(flip, 1), 1.0 - sum(float(p.sum()) for p in pattern), np.inf)  # another pattern
        integer = np.concatenate([np.zeros(k + 1)] + [np.r_[np.zeros(m), np.ones(m)] for m in n])
        cons = LinearConstraint(sp.csr_matrix(np.vstack(R)), np.concatenate(r_lo), np.concatenate(r_hi))
        return cons, Bounds(lb, ub), integer


def certify_global(chain: Chain, z: torch.Tensor, x: torch.Tensor, *, observed: torch.Tensor | None = None,
                   rtol: float, seconds: float = MILP_SECONDS, left: Callable[[], float] = lambda: math.inf
                   ) -> GlobalVerdict:
    """For each ``z`` (B, k) with ``G(z) = x`` (B, n) to ``rtol`` whose region is injective (check
    :func:`~ganinvert.radius.unique_radius` first, and :func:`why_not`): does another activation
    pattern admit a pre-image of ``x`` (its ``observed`` rows, each within the tolerance the layer
    LPs use, ``rtol max |x|``)? At most ``seconds`` per sample and ``left()``, the time left."""
    B, k = z.shape[0], chain.in_dim
    unique = torch.zeros(B, dtype=torch.bool)
    witness = torch.full((B, k), math.nan, dtype=torch.float64)
    messages = [""] * B
    if B == 0:
        return GlobalVerdict(unique, witness, messages)
    try:
        enc = _Encoding(chain)
    except LayerTooLargeError as e:
        return GlobalVerdict(unique, witness, [f"no global certificate: {e}"] * B)
    steps = chain.walk(z)
    tol = rtol * target_scale(x, keepdim=True)
    rows = chain.output_act.bounds(x, tol=tol)
    band = (tol / rows.weight).cpu().double().numpy()  # the tolerance in pre-activation units, per row
    for i in range(B):
        deadline = time.perf_counter() + min(seconds, left())
        keep = np.ones(x.shape[1], dtype=bool) if observed is None else observed[i].cpu().numpy()
        lo = np.where(keep, rows.lo[i].cpu().double().numpy() - band[i], -np.inf)  # an unobserved row binds nothing
        hi = np.where(keep, rows.hi[i].cpu().double().numpy() + band[i], np.inf)
        pattern = [s.pattern[i].cpu().numpy() for s in steps[:-1]]
        F = 1.0 + sum(float(s.out[i].sum()) for s in steps[:-1])
        t0 = time.perf_counter()
        built = enc.problem(lo, hi, pattern, F, stop=lambda: time.perf_counter() > deadline)
        if isinstance(built, str):
            messages[i] = built
            continue
        res = _solve(built, k, 0.0, deadline)
        if res.x is not None and res.x[k] < TAU:  # a point only at a tiny scale: look above the floor
            res = _solve(built, k, TAU, deadline)
            if res.status == 2:
                messages[i] = (f"no global certificate: another pattern admits a point only at scale t < {TAU:g} "
                               "(a pre-image a thousand times further out than z, or none)")
                continue
        if res.status == 2:
            unique[i] = True
            messages[i] = (f"globally unique: a MILP over the {sum(enc.n)} hidden units' branches "
                           f"({time.perf_counter() - t0:.2f} s)")
        elif res.x is not None:
            cand = torch.as_tensor(res.x[:k] / res.x[k], dtype=z.dtype, device=z.device)[None]
            cand = _polish(chain, cand, rows.lo[i:i + 1], rows.hi[i:i + 1], torch.as_tensor(keep, device=z.device))
            with torch.no_grad():
                fits = relative_residual(chain.output(cand), x[i:i + 1], observed=None if observed is None
                                         else observed[i:i + 1]).item() <= rtol
            far = (cand[0] - z[i]).norm().item()
            if fits and far > 1e-6 * (1 + z[i].norm().item()):
                witness[i] = cand[0].cpu().double()
                messages[i] = f"not unique: another pre-image at distance {far:.3g} (found by the MILP)"
            else:
                messages[i] = "no global certificate: the MILP's point is not a second pre-image (numerics)"
        else:
            messages[i] = f"no global certificate: the MILP did not finish in time ({res.message})"
    return GlobalVerdict(unique, witness, messages)


def _polish(chain: Chain, z: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, keep: torch.Tensor,
            steps: int = 3) -> torch.Tensor:
    """Gauss-Newton on the MILP's point ``z`` (1, k), within its own region, towards the output's
    equation rows (``lo = hi``, ``keep``-ed): HiGHS's point meets the rows to its 1e-7 tolerance, a
    second pre-image is then checked to ``rtol``."""
    eq = (lo == hi) & torch.isfinite(lo) & keep
    for _ in range(steps):
        p, J = linearize(chain, z)
        d = torch.linalg.lstsq(J[0][eq[0]], (lo - p)[0][eq[0]]).solution
        z = z + d[None]
    return z


def _solve(built, t: int, floor: float, deadline: float):
    """HiGHS's MILP on ``built`` (:meth:`_Encoding.problem`) with the scale (variable ``t``) at
    least ``floor``, until ``deadline``."""
    cons, bounds, integer = built
    lb = bounds.lb.copy()
    lb[t] = floor
    return milp(np.zeros(len(integer)), constraints=cons, integrality=integer, bounds=Bounds(lb, bounds.ub),
                options={"time_limit": max(1e-3, deadline - time.perf_counter())})
