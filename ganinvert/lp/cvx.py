"""The toolkit's LPs in cvxpy: exported for any installed solver, and differentiated by cvxpylayers.

Every LP here is a :class:`~ganinvert.lp.problem.LayerProblem` (the exact layer LP, the
thresholded l_inf and the l_1 relax LPs of noisy inversion, the activation-pattern LP), so one
formulation covers them all::

    minimise  t + c^T u   s.t.  (w A) u - t <= w (hi - b),  (w A) u + t >= w (lo - b),
                              u_lo <= u <= u_hi,  t >= 0

- :func:`to_cvxpy` writes one sample's LP with its data as constants (open sides dropped), to be
  solved by any cvxpy solver (``problem.solve(solver="CLARABEL")``, SCS, a commercial one).
- :func:`lp_layer` solves a batch through a ``cvxpylayers.torch.CvxpyLayer`` built once per layer
  shape (its parameters: the row-scaled weights ``w A``, the scaled bounds and the cost; each is
  computed in torch from the weights, bias, targets and bounds, so gradients reach all of them).
  Open sides get a finite stand-in far beyond any row value, so one layer serves every pattern.
  The LP's own differentiation (diffcp, in ``lsmr`` mode: the minimum-norm solution of the
  singular derivative system) is the reference the native implicit derivative
  (:mod:`ganinvert.gradients`) is tested against.
- :func:`solve_cvxpylayers` is the same layer as a solver of ``Layerwise(solver="cvxpylayers")``.

cvxpy and cvxpylayers are imported on first use: the rest of the package does not need them.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import torch

from .problem import LayerProblem, LPSolution

#: what :func:`lp_layer` asks of diffcp: Clarabel (an interior-point method, accurate to ~1e-9
#: on these LPs) and the ``lsmr`` derivative, whose tolerances (1e-10) the gradients need
SOLVER_ARGS = {"solve_method": "Clarabel", "mode": "lsmr", "tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11}


class CvxpyLP(NamedTuple):
    """One sample's LP in cvxpy: ``problem`` and its variables ``u`` (k,) and ``t`` (the misfit)."""

    problem: object
    u: object
    t: object


def _formulate(cp, k: int, rows_hi, r_hi, rows_lo, r_lo, cost, u_lo, u_hi) -> CvxpyLP:
    """The LP, from constants or cvxpy parameters alike (``rows_*``/``r_*`` None: no such rows;
    ``u_lo``/``u_hi`` a scalar, ``+-inf`` for none, or a (k,) parameter)."""
    u, t = cp.Variable(k), cp.Variable(nonneg=True)
    cons = []
    if rows_hi is not None:
        cons.append(rows_hi @ u - t <= r_hi)
    if rows_lo is not None:
        cons.append(rows_lo @ u + t >= r_lo)
    if not isinstance(u_lo, float) or math.isfinite(u_lo):
        cons.append(u >= u_lo)
    if not isinstance(u_hi, float) or math.isfinite(u_hi):
        cons.append(u <= u_hi)
    objective = t if cost is None else t + cost @ u
    return CvxpyLP(cp.Problem(cp.Minimize(objective), cons), u, t)


def to_cvxpy(problem: LayerProblem, index: int | None = None) -> CvxpyLP | list[CvxpyLP]:
    """The LP of sample ``index`` of ``problem`` as a ``cvxpy.Problem`` (all samples, as a list,
    when ``index`` is None). Its optimal value is the LP's ``t* + c^T u*``; ``.u`` holds ``u*``.

    Example::

        lp = ganinvert.lp.to_cvxpy(problem, 0)
        lp.problem.solve(solver="CLARABEL")
        u = lp.u.value
    """
    import cvxpy as cp

    if index is None:
        return [to_cvxpy(problem, i) for i in range(problem.batch)]
    A = problem.A if problem.A.dim() == 2 else problem.A[index]
    b = problem.b if problem.b.dim() == 1 else problem.b[index]
    A, b, lo, hi, w = (v.detach().cpu().double().numpy() for v in (A, b, problem.lo[index], problem.hi[index],
                                                                    problem.w[index]))
    WA = w[:, None] * A
    up, down = (hi < math.inf), (lo > -math.inf)
    cost = None if problem.cost is None else problem.cost[index].detach().cpu().double().numpy()
    return _formulate(cp, A.shape[1], WA[up] if up.any() else None, (w * (hi - b))[up],
                      WA[down] if down.any() else None, (w * (lo - b))[down], cost, float(problem.u_lo),
                      float(problem.u_hi))


@functools.lru_cache(maxsize=16)  # a pure function of the layer's shape: built once, reused by every batch
def _layer(n: int, k: int, with_cost: bool, boxed: bool):
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    WA, r_hi, r_lo = cp.Parameter((n, k)), cp.Parameter(n), cp.Parameter(n)
    box = (cp.Parameter(k), cp.Parameter(k)) if boxed else (-math.inf, math.inf)
    cost = cp.Parameter(k) if with_cost else None
    lp = _formulate(cp, k, WA, r_hi, WA, r_lo, cost, *box)
    params = [WA, r_hi, r_lo] + (list(box) if boxed else []) + ([cost] if with_cost else [])
    return CvxpyLayer(lp.problem, parameters=params, variables=[lp.u, lp.t])


def lp_layer(problem: LayerProblem, *, fixed: tuple[torch.Tensor, torch.Tensor] | None = None,
             solver_args: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve a batch of LPs with cvxpylayers, differentiably: ``(u (B, k), t (B,))`` on the
    autograd graph of ``problem``'s tensors, in their dtype and device.

    Args:
        problem: the LPs.
        fixed: ``(mask (B, k) bool, value (B, k))``: input coordinates held at a value (their box
            bound, active at the solution: the derivative is then taken on that active set).
        solver_args: Clarabel settings that replace those of :data:`SOLVER_ARGS` (e.g.
            ``{"max_iter": 50}``).
    """
    A, w = problem.A, problem.w
    n, k = A.shape[-2:]
    B = w.shape[0]
    A = A if A.dim() == 3 else A.expand(B, n, k)
    b = problem.b if problem.b.dim() == 2 else problem.b.expand_as(w)
    box_lo = torch.full((B, k), problem.u_lo, dtype=w.dtype, device=w.device)
    box_hi = torch.full_like(box_lo, problem.u_hi)
    if fixed is not None:  # substituted: the LP on its active set (the derivative holds them)
        mask, value = fixed
        b = b + torch.bmm(A, torch.where(mask, value, torch.zeros_like(value)).unsqueeze(-1)).squeeze(-1)
        A = A * (~mask).unsqueeze(1).to(A.dtype)
        box_lo, box_hi = torch.where(mask, value, box_lo), torch.where(mask, value, box_hi)
    WA = w.unsqueeze(-1) * A

    def side(bound: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        finite = torch.isfinite(bound)
        return finite, torch.where(finite, w * (torch.where(finite, bound, torch.zeros_like(bound)) - b),
                                   torch.zeros_like(bound))

    up, r_hi = side(problem.hi)
    down, r_lo = side(problem.lo)
    boxed = bool(torch.isfinite(box_lo).any() or torch.isfinite(box_hi).any())
    layer = _layer(n, k, problem.cost is not None, boxed)
    cost = [problem.cost.cpu()] if problem.cost is not None else []
    reach = 1.0 + torch.cat([r_hi.detach().abs(), r_lo.detach().abs(), box_lo.detach().abs().nan_to_num(posinf=0.0),
                             box_hi.detach().abs().nan_to_num(posinf=0.0)], 1).amax(1, keepdim=True)
    # Open sides get a finite stand-in: near enough to keep the derivative's least-squares solve
    # accurate (1e3 x the data costs it two digits), checked inactive after the solve, else moved away
    for far in (10 * reach, 1e3 * reach, 1e6 * reach):
        args = [WA.cpu(), torch.where(up, r_hi, far).cpu(), torch.where(down, r_lo, -far).cpu()]
        if boxed:
            args += [torch.where(torch.isfinite(box_lo), box_lo, -far).cpu(),
                     torch.where(torch.isfinite(box_hi), box_hi, far).cpu()]
        graph = torch.is_grad_enabled() and any(a.requires_grad for a in args + cost)
        # the derivative mode is diffcp's alone: without a graph diffcp hands every option to Clarabel
        options = {**SOLVER_ARGS, **(solver_args or {})}
        if not graph:
            del options["mode"]
        u, t = layer(*args, *cost, solver_args=dict(options))
        with torch.no_grad():
            rows = torch.bmm(WA.detach().cpu(), u.detach().unsqueeze(-1)).squeeze(-1).abs()
            near = (rows.amax(1, keepdim=True) > far.cpu() / 2) | (u.detach().abs().amax(1, keepdim=True) > far.cpu() / 2)
        if not near.any():
            break
    return u.to(A.device), t.to(A.device)


def solve_cvxpylayers(prob: LayerProblem, *, u0: torch.Tensor | None = None, tol: float | None = None,
                      max_iter: int | None = None, stop: Callable[[], bool] | None = None) -> LPSolution:
    """``Layerwise(solver="cvxpylayers")``: each sample's layer LP through :func:`lp_layer`
    (Clarabel inside diffcp), without gradients. A sample the solver fails on comes back
    with ``ok=False`` and the solver's message; the others keep their answers.

    Args:
        prob: the problems.
        u0: not used (an interior-point method starts from its own point).
        tol: Clarabel's gap and feasibility tolerances (``tol_gap_abs``, ``tol_gap_rel``,
            ``tol_feas``; default :data:`SOLVER_ARGS`' 1e-11).
        max_iter: Clarabel's iteration limit (default Clarabel's own, 200). cvxpylayers does not
            pass Clarabel's status on, so a sample cut short by it comes back as Clarabel left it,
            with ``ok=True``: :func:`~ganinvert.lp.layer.invert_layer` certifies its answer a
            posteriori, but an unfinished misfit ``t`` reads as the LP's optimum.
        stop: asked once, before the batch (diffcp solves it as one call); true: every sample
            comes back with ``ok=False``.
    """
    if stop is not None and stop():
        return LPSolution(u=torch.zeros(prob.batch, prob.A.shape[-1], dtype=prob.A.dtype, device=prob.A.device),
                          t=torch.zeros(prob.batch, dtype=prob.A.dtype, device=prob.A.device),
                          ok=torch.zeros(prob.batch, dtype=torch.bool, device=prob.A.device),
                          messages=["not run: out of time"] * prob.batch)
    args = {} if tol is None else {"tol_gap_abs": float(tol), "tol_gap_rel": float(tol), "tol_feas": float(tol)}
    if max_iter is not None:
        args["max_iter"] = int(max_iter)
    with torch.no_grad():
        try:
            u, t = lp_layer(prob, solver_args=args)
            ok, messages = torch.ones(prob.batch, dtype=torch.bool), [""] * prob.batch
        except Exception as e:  # noqa: BLE001 - diffcp raises for the whole batch: retry one by one
            if prob.batch == 1:
                k = prob.A.shape[-1]
                return LPSolution(u=torch.zeros(1, k, dtype=prob.A.dtype, device=prob.A.device),
                                  t=torch.full((1,), math.inf, dtype=prob.A.dtype, device=prob.A.device),
                                  ok=torch.zeros(1, dtype=torch.bool, device=prob.A.device),
                                  messages=[f"cvxpylayers: {type(e).__name__}: {e}"])
            parts = [solve_cvxpylayers(prob.select([i]), tol=tol, max_iter=max_iter) for i in range(prob.batch)]
            return LPSolution(u=torch.cat([p.u for p in parts]), t=torch.cat([p.t for p in parts]),
                              ok=torch.cat([p.ok.cpu() for p in parts]).to(prob.A.device),
                              messages=[p.messages[0] for p in parts])
    return LPSolution(u=prob.clamp(u), t=t.clamp(min=0), ok=ok.to(prob.A.device), messages=messages)
