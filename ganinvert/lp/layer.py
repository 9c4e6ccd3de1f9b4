"""Inverting one layer exactly: fast path, then LP, then polish and the uniqueness test."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import torch

from ..activations import Activation
from ..tolerances import target_scale
from .certify import polish_and_certify
from .cvx import solve_cvxpylayers
from .fastpath import lstsq_fast_path
from .highs import solve_highs
from .ipm import solve_ipm
from .problem import MAX_DENSE_INPUT, LayerProblem, LPSolution

logger = logging.getLogger(__name__)

#: LP solvers by name: ``solver(problem, *, u0, tol, max_iter, stop) -> LPSolution``; ``stop()``
#: is the time limit, asked between iterations (IPM), samples (HiGHS) or before the batch
#: (cvxpylayers), and once true the samples unsolved come back ``ok=False``; ``tol`` and
#: ``max_iter`` are each solver's own (the IPM's relative residual and gap, and its iteration cap;
#: HiGHS's feasibility tolerance and simplex iteration limit; Clarabel's gap and feasibility
#: tolerances and iteration limit under cvxpylayers), its default when omitted
SOLVERS: Mapping[str, Callable[..., LPSolution]] = MappingProxyType({
    "ipm": solve_ipm,
    "highs": solve_highs,
    "cvxpylayers": solve_cvxpylayers,
})
#: the options every solver takes (``Layerwise(solver_options=...)``)
SOLVER_OPTIONS = frozenset({"tol", "max_iter"})
#: where a layer's input is a ReLU's output (``u >= 0``), the LP also asks for a small ``sum(u)``,
#: at this cost per unit of ``u`` relative to the sample's scale. The true input has a zero on
#: every unit its ReLU switched off, and when the layer has at least as many equations as the
#: input has active units it is a vertex of the pre-image; the l_1 cost leads to a sparse vertex.
#: Where the cost is too large for the exact penalty (:class:`~ganinvert.lp.problem.LayerProblem`:
#: the answer then misses the pre-image), the plain LP is solved again from that answer and lands
#: in the pre-image next to it (:func:`_solve`). Measured on the paper's decoder (the 255 of 1000
#: samples least squares leaves open), the pass returned ``G(z) = x`` for 126 at a cost of
#: 1e-4 or 1e-3 (113 at 1e-6, 101 at 1e-2), against 97 with the plain LP, whose interior-point
#: answer lies inside the pre-image
SPARSE_COST = 1e-4


@dataclass
class LayerSolution:
    """Per-sample outcome of one layer.

    Attributes:
        u: ``(B, k)`` the recovered layer input.
        residual: ``(B,)`` largest weighted constraint violation at ``u``.
        unique: ``(B,)`` bool, the pre-image is certified to be the single point ``u``.
        solver_ok: ``(B,)`` bool, False where the LP solver broke down.
        optimum: ``(B,)`` LP optimum ``t*`` (0 where the fast path certified; where its least
            squares proved the observation out of range, the lower bound on ``t*`` it proved,
            and ``u`` that least-squares point instead of the LP's).
        methods: ``"lstsq"`` or the LP solver's name, per sample.
        messages: solver messages per sample.
    """

    u: torch.Tensor
    residual: torch.Tensor
    unique: torch.Tensor
    solver_ok: torch.Tensor
    optimum: torch.Tensor
    methods: list[str]
    messages: list[str]


def beyond_lp(n: int, k: int, max_lp_dim: int) -> str:
    """Why a layer ``k -> n`` whose ``k`` inputs exceed ``max_lp_dim`` has no LP answer."""
    return (f"layer {n}x{k} needs the LP, but its {k} inputs exceed max_lp_dim={max_lp_dim}"
            + (f" (and with {n} < {k} outputs its pre-image is never a single point)" if n < k else ""))


def make_problem(A: torch.Tensor, b: torch.Tensor, act: Activation, y: torch.Tensor, *,
                 u_range: tuple[float, float], tol: torch.Tensor, sparse: bool = False) -> LayerProblem:
    """The layer LP for observations ``y`` (B, n) of ``act(A u + b)``; with ``sparse`` and a
    nonnegative input, the cost :data:`SPARSE_COST` on ``sum(u)``."""
    bounds = act.bounds(y, tol=tol[:, None])
    cost = None
    if sparse and SPARSE_COST > 0 and u_range == (0.0, float("inf")):
        cost = (SPARSE_COST / target_scale(y))[:, None].expand(-1, A.shape[1]).to(A.dtype)
    return LayerProblem(A, b, bounds.lo, bounds.hi, bounds.weight, *u_range, cost=cost)


def _solve(prob: LayerProblem, u0: torch.Tensor, tol: torch.Tensor, *, solver: str,
           stop: Callable[[], bool] | None, options: Mapping[str, float | int], rank_rtol: float
           ) -> tuple[LPSolution, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``solver`` on ``prob``, then each answer polished and tested
    (:func:`~ganinvert.lp.certify.polish_and_certify`). Returns the solution, the polished points,
    their uniqueness and whether each is verified feasible (within ``tol``). Where a cost left a
    sample unverified, it is solved again without the cost, so a misfit is never the cost's doing
    (a proof that x is out of range rests on it)."""
    sol = SOLVERS[solver](prob, u0=u0, stop=stop, **options)
    u_pol, uniq = polish_and_certify(prob, sol.u, tol=tol, rank_rtol=rank_rtol)
    # The certificate is checked a posteriori on the polished point (feasible to tolerance,
    # zero cone of feasible directions), so it stands even where the IPM hit its iteration
    # cap before its own stopping test fired.
    verified = prob.violation(u_pol) <= tol
    again = (~verified).nonzero().flatten() if prob.cost is not None else verified.new_zeros(0, dtype=torch.long)
    if again.numel():
        plain, u2, uniq2, ver2 = _solve(dataclasses.replace(prob.select(again), cost=None), sol.u[again],
                                        tol[again], solver=solver, stop=stop, options=options, rank_rtol=rank_rtol)
        sol.u[again], sol.t[again], sol.ok[again] = plain.u, plain.t, plain.ok
        u_pol[again], uniq[again], verified[again] = u2, uniq2, ver2
        for j, i in enumerate(again.tolist()):
            sol.messages[i] = plain.messages[j]
    return sol, u_pol, uniq, verified


def invert_layer(A: torch.Tensor, b: torch.Tensor, act: Activation, y: torch.Tensor, *,
                 u_range: tuple[float, float], rtol: float, solver: str | None = "ipm",
                 rank_rtol: float = 1e-8, fast_path: bool = True, max_lp_dim: int = MAX_DENSE_INPUT,
                 solver_options: Mapping[str, float | int] | None = None,
                 stop: Callable[[], bool] | None = None) -> LayerSolution:
    """Find ``u`` with ``act(A u + b) = y`` for a batch, certifying uniqueness per sample.

    Args:
        A: ``(n, k)`` float64; b: ``(n,)``; y: ``(B, n)`` float64 on the same device.
        u_range: box of the layer input (``(0, inf)`` after a ReLU).
        rtol: feasibility tolerance relative to ``max |y|`` of each sample, at least 1
            (:func:`~ganinvert.tolerances.target_scale`).
        solver: a key of :data:`SOLVERS`, for the samples the fast path does not settle; None: no
            LP (those samples come back with ``solver_ok=False`` and the reason).
        rank_rtol: relative singular-value threshold of the rank checks.
        fast_path: try least squares first (off: every sample goes to the LP).
        max_lp_dim: largest layer input the dense LP takes (its normal matrix is k x k per
            sample); samples that would need a larger LP come back with ``solver_ok=False``.
        solver_options: ``tol`` and/or ``max_iter`` for the LP solver (see :data:`SOLVERS`).
        stop: the time limit, asked by the LP solver as it goes (see :data:`SOLVERS`).
    """
    B, k = y.shape[0], A.shape[1]
    tol = rtol * target_scale(y)  # (B,)
    prob = make_problem(A, b, act, y, u_range=u_range, tol=tol, sparse=True)
    optimum = torch.zeros(B, dtype=A.dtype, device=A.device)
    messages = [""] * B
    if fast_path:
        fp = lstsq_fast_path(prob, tol=tol, rank_rtol=rank_rtol)
        u, unique, settled = fp.u, fp.certified.clone(), fp.certified | fp.infeasible
        optimum = torch.where(fp.infeasible, fp.misfit_bound, optimum)  # out of range, proven: no LP
        for i, (out, bound, t) in enumerate(zip(fp.infeasible.tolist(), fp.misfit_bound.tolist(), tol.tolist(),
                                                strict=True)):
            if out:
                messages[i] = (f"no pre-image: least squares on the pinned rows leaves a misfit of at least "
                               f"{bound:.3g} (tolerance {t:.3g})")
    else:
        u = torch.zeros(B, k, dtype=A.dtype, device=A.device)
        unique = settled = torch.zeros(B, dtype=torch.bool, device=A.device)
    methods = ["lstsq" if c else solver or "none" for c in settled.tolist()]
    solver_ok = torch.ones(B, dtype=torch.bool, device=A.device)
    rest = (~settled).nonzero().flatten()
    if rest.numel() and (solver is None or k > max_lp_dim):
        why = (beyond_lp(A.shape[0], k, max_lp_dim) if solver is not None else
               "least squares neither pins this layer's input nor proves x out of its range, and no LP was run")
        solver_ok[rest] = False
        for i in rest.tolist():
            messages[i] = why
    elif rest.numel():
        sub = prob.select(rest)
        sol, u_pol, uniq, verified = _solve(sub, u[rest], tol[rest], solver=solver, stop=stop,
                                            options=solver_options or {}, rank_rtol=rank_rtol)
        ok = sol.ok | verified
        u[rest], unique[rest] = u_pol, uniq & ok
        solver_ok[rest], optimum[rest] = ok, torch.where(verified, torch.zeros_like(sol.t), sol.t)
        for j, i in enumerate(rest.tolist()):
            messages[i] = "" if ok[j] else sol.messages[j]
        logger.debug("layer %dx%d: %d/%d samples to %s (%d iterations)", A.shape[0], k,
                     rest.numel(), B, solver, sol.iterations)
    return LayerSolution(u=u, residual=prob.violation(u), unique=unique, solver_ok=solver_ok,
                         optimum=optimum, methods=methods, messages=messages)


def certify_at(A: torch.Tensor, b: torch.Tensor, act: Activation, y: torch.Tensor, u: torch.Tensor, *,
               u_range: tuple[float, float], rtol: float, rank_rtol: float = 1e-8) -> torch.Tensor:
    """``(B,)`` bool: the pre-image of ``y`` under ``act(A u + b)`` is the single point ``u``, for a
    ``u`` already known to be one (a layer input along a known ``G(z)``).

    The test is :func:`~ganinvert.lp.certify.polish_and_certify`'s, at ``u`` itself: no LP needs to
    find a point first. Where the active set at ``u`` leaves a direction free (a 256 -> 256 layer
    with 40 lit outputs), that direction is the proof of a second pre-image, found by one rank
    test; only a point whose equalities pin it but whose tight one-sided rows might not needs
    the small Stiemke LP. On the uniqueness check of ``mlp_gan``'s square layer this replaced a
    full layer LP per sample (docs/design.md §3.7). A ``u`` that is not a pre-image to
    tolerance is never certified."""
    tol = rtol * target_scale(y)
    prob = make_problem(A, b, act, y, u_range=u_range, tol=tol)
    _, unique = polish_and_certify(prob, u, tol=tol, rank_rtol=rank_rtol)
    return unique & (prob.violation(u) <= tol)
