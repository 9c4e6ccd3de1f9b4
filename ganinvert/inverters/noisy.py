"""Noisy observations (docs/design.md §4): the layer-wise pass with thresholds.

Per layer, for a ReLU observation ``y = relu(A u + b) + e`` with ``|e|_inf <= eps``:

- ``norm="linf"`` (the paper's main noisy method): minimise ``t`` subject to
  ``|a_j u + b_j - y_j| <= t`` on rows with ``y_j > tau``, ``a_j u + b_j <= y_j + t`` on the
  others, ``u >= 0`` on hidden layers; accepted when ``t <= tau``. It is the one layer LP
  (:class:`ganinvert.lp.LayerProblem`) with the threshold in its bounds
  (:func:`~ganinvert.lp.noisy.threshold_problem`). ``tau`` starts at the
  noise level, grows by ``growth`` (1.2) until the LP is feasible, and is carried into the next
  layer. LeakyReLU rows: ``y > tau`` the positive branch, ``y < -tau`` the negative one (scaled
  by ``1 / alpha``), rows in between either.
- ``norm="l1"`` (the paper's "relax" LP): maximise ``sum_{y_j >= 2 tau} y_j a_j u`` subject to
  ``act(A u + b) <= y + tau`` row-wise (:func:`~ganinvert.lp.noisy.relax_problem`). Pushing the fitted rows up to
  their upper bounds makes the solution fit ``y`` in l_1 without an l_1 objective. Stopping rule,
  from observables only: ``tau`` starts at the noise level and grows by ``growth`` while the
  layer's l_1 residual ``||act(A u + b) - y||_1`` falls (or while the LP is infeasible); the
  point of smallest residual is kept and passed to the next layer.
- ``norm="l2"``: the l_inf schedule picks the threshold, then least squares on the rows
  ``y > tau`` (the active set), then ``u >= 0``.

Joint polish (``joint=True``, default, for generators whose hidden activations are piecewise
linear): the layer-wise pass fits each layer to a target that already carries the previous
layer's error, so its latent error is about twice the noise. Fixing the hidden on/off pattern at
the layer-wise estimate makes ``G`` affine in ``z`` (docs/design.md §3.3) and the same thresholded fit
can be solved over all layers at once: the activation-pattern LP (``linf``, descending through
regions as in :func:`~ganinvert.search.pattern.solve_pattern_lp`) or least squares on the active
output rows (``l2``). The polished ``z`` is kept only where its misfit in the chosen norm is
smaller than the layer-wise one.

When ``noise`` is not given it is estimated from ``x`` alone: bisection on ``log tau`` for the
threshold where the last layer's thresholded l_inf LP turns feasible (``t* <= tau``), to a factor
``growth``; the estimate is the largest ``tau`` seen infeasible. That is a lower bound on the true
l_inf noise level (``u*`` is feasible at ``tau = eps``), so the schedule starts below the noise
and grows to it. No bound is reported then: the certificate needs the true level.

Certified error (linf and l2, with ``noise`` given and ``tau >= eps`` at every layer): on the
active rows ``S`` both ``u`` (misfit ``t``) and ``u*`` (misfit ``<= eps``) fit ``y``, so
``|A_S (u - u*)|_inf <= eps + t`` and ``||u - u*||_2 <= (eps + t) sqrt(|S|) /
sigma_min(A_S)`` (``sigma_min`` bounded below rigorously by the fast path's Cholesky). That bound
is the next layer's noise level; the latent's is reported. After a joint polish the reported
bound is that of the layer-wise estimate ``z_lw`` plus ``||z - z_lw||`` (triangle inequality):
still certified. The relax LP bounds its rows from above only, so the l1 fit has no such bound
and reports none.
"""

from __future__ import annotations

import logging
import math
from types import MappingProxyType

import torch

from ..backward import BackwardPass
from ..budget import Budget, unlimited
from ..chain import Chain
from ..errors import InvalidInputError
from ..linearize import piecewise_linear
from ..lp.fastpath import lstsq_fast_path
from ..lp.ipm import solve_ipm
from ..lp.noisy import relax_problem, threshold_problem
from ..lp.pattern import pattern_problem
from ..lp.problem import LayerProblem
from ..operators import DEFAULT_MAX_DENSE
from ..search.pattern import solve_pattern_lp
from .base import Inverter, RawSolution

logger = logging.getLogger(__name__)

NORMS = ("linf", "l1", "l2")
#: ``ord`` of :func:`torch.linalg.vector_norm` for each norm
NORM_ORDER = MappingProxyType({"linf": math.inf, "l1": 1, "l2": 2})


def _within(t: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: misfit ``t`` accepted at threshold ``tau`` (``t <= tau`` up to round-off)."""
    return t <= tau * (1 + 1e-9) + 1e-12


class Noisy(Inverter):
    """Layer-wise inversion of noisy observations (see the module doc).

    Args:
        norm: ``"linf"`` (LP per layer with the threshold schedule), ``"l1"`` (the relax LP)
            or ``"l2"`` (least squares on the active set).
        noise: the l_inf noise level ``eps`` of x (None: estimated, see the module doc).
        growth: factor of the threshold schedule; max_steps: at most this many growths per layer.
        joint: polish over all layers at once with the hidden pattern fixed (module doc; linf
            and l2 only).
        joint_rounds: pattern LPs of the ``linf`` polish's descent.
    """

    name = "noisy"

    def __init__(self, *, norm: str = "linf", noise: float | None = None, growth: float = 1.2,
                 max_steps: int = 80, max_dense_entries: int = DEFAULT_MAX_DENSE, joint: bool = True,
                 joint_rounds: int = 5) -> None:
        if norm not in NORMS:
            raise InvalidInputError(f"Expected norm in {NORMS}, Got: {norm!r}")
        if noise is not None and not noise >= 0:
            raise InvalidInputError(f"Expected noise >= 0 (the l_inf noise level of x) or None, Got: {noise}")
        if not growth > 1 or max_steps < 1:
            raise InvalidInputError(f"Expected growth > 1 and max_steps >= 1, Got: {growth}, {max_steps}")
        self.norm, self.noise, self.growth = norm, noise, float(growth)
        self.max_steps, self.max_dense_entries = int(max_steps), int(max_dense_entries)
        if joint_rounds < 1:
            raise InvalidInputError(f"Expected joint_rounds >= 1, Got: {joint_rounds}")
        self.joint, self.joint_rounds = bool(joint), int(joint_rounds)

    @property
    def fit_order(self) -> float:
        """The chosen norm as ``ord`` of :func:`torch.linalg.vector_norm` (see
        :attr:`Inverter.fit_order`)."""
        return NORM_ORDER[self.norm]

    @property
    def output_slack(self) -> float:
        """Noisy values may leave the output range by the noise level, by anything when it is
        estimated (uniform noise takes ReLU outputs below 0)."""
        return math.inf if self.noise is None else self.noise

    def _estimate_noise(self, A, b, act, x, u_range, *, rtol: float,
                        budget: Budget | None = None) -> torch.Tensor:
        """``(B,)`` a lower bound on the l_inf noise level: the largest threshold ``tau`` found at
        which the last layer's thresholded l_inf LP is infeasible (``t* > tau``), within a factor
        ``growth`` of the smallest feasible one. ``u*`` is feasible with ``t <= eps`` at
        ``tau = eps`` and feasibility is monotone in ``tau`` (a larger threshold only relaxes
        rows), so an infeasible ``tau`` is below ``eps``. Bisection on ``log tau`` between
        ``rtol max|x|`` and the misfit at threshold 0 (feasible at its own value), about 8 LP
        solves; ``rtol max|x|`` itself where that is already feasible (exact data). The time limit
        stops the bisection early: the threshold found so far is still a lower bound."""
        budget = budget or unlimited()
        lo_tau = (rtol * x.abs().amax(1)).clamp(min=1e-300)
        if budget.expired:  # no time for a single LP: the floor (the pass will not start either)
            return lo_tau

        def misfit(idx, tau):
            return solve_ipm(threshold_problem(act, A, b, x[idx], tau[:, None], u_range)).t

        every = torch.arange(x.shape[0], device=x.device)
        hi_tau = torch.maximum(misfit(every, torch.zeros_like(lo_tau)), lo_tau)
        hi_tau = torch.where(_within(misfit(every, lo_tau), lo_tau), lo_tau, hi_tau)
        while not budget.expired:
            idx = (hi_tau > lo_tau * self.growth).nonzero().flatten()
            if not idx.numel():
                break
            mid = (lo_tau[idx] * hi_tau[idx]).sqrt()
            feasible = _within(misfit(idx, mid), mid)
            hi_tau[idx] = torch.where(feasible, mid, hi_tau[idx])
            lo_tau[idx] = torch.where(feasible, lo_tau[idx], mid)
        return lo_tau

    def _layer_l1(self, A, b, act, y, tau, u_range, budget: Budget):
        """The relax LP for every sample; ``tau`` (B,) grows by ``growth`` while the layer's l_1
        residual ``||act(A u + b) - y||_1`` falls (or while the LP is infeasible), and the best
        point is kept (the time limit stops the growth). Returns ``(u, residual, tau)``."""
        B, k = y.shape[0], A.shape[1]
        best_u = torch.zeros(B, k, dtype=y.dtype, device=y.device)
        best_r = torch.full((B,), math.inf, dtype=y.dtype, device=y.device)
        found = torch.zeros(B, dtype=torch.bool, device=y.device)  # a feasible point kept
        best_tau = tau.clone()
        feas_tol = 1e-9 * (1 + y.abs().amax(1))
        todo = torch.arange(B, device=y.device)
        for _ in range(self.max_steps):
            sol = solve_ipm(relax_problem(act, A, b, y[todo], tau[todo, None], u_range))
            r = (act.forward(sol.u @ A.T + b) - y[todo]).abs().sum(1)
            feasible = sol.t <= feas_tol[todo]
            # no feasible point yet: keep the latest (the most relaxed); then only better feasible ones
            better = ~found[todo] | (feasible & (r < best_r[todo]))
            i = todo[better]
            best_u[i], best_r[i], best_tau[i], found[i] = sol.u[better], r[better], tau[i], feasible[better]
            todo = todo[better]  # improved (or still infeasible): grow and solve again
            if not todo.numel() or budget.expired:
                break
            tau[todo] *= self.growth
        return best_u, best_r, best_tau

    def _layer(self, A, b, act, y, tau, u_range, budget: Budget, *, want_sigma: bool):
        """Solve one layer for every sample, growing ``tau`` (B,) where infeasible. Returns
        ``(u, t, tau, prob, sigma)``: ``prob`` is the layer LP at the final thresholds and
        ``sigma`` a lower bound on ``sigma_min`` of its active rows (None unless l2 or asked)."""
        B, k = y.shape[0], A.shape[1]
        u = torch.zeros(B, k, dtype=y.dtype, device=y.device)
        t = torch.full((B,), math.inf, dtype=y.dtype, device=y.device)
        todo = torch.arange(B, device=y.device)
        for _ in range(self.max_steps):
            sol = solve_ipm(threshold_problem(act, A, b, y[todo], tau[todo, None], u_range))
            u[todo], t[todo] = sol.u, sol.t
            bad = ~_within(sol.t, tau[todo])
            if not bad.any() or budget.expired:  # a sample cut short keeps t > tau: no bound
                break
            todo = todo[bad]
            tau[todo] *= self.growth
        prob = threshold_problem(act, A, b, y, tau[:, None], u_range)
        sigma = None
        if self.norm == "l2" or want_sigma:
            fp = lstsq_fast_path(prob, tol=torch.full((B,), math.inf, dtype=y.dtype, device=y.device))
            sigma = fp.sigma_min
            if self.norm == "l2":  # least squares on the active set the l_inf schedule settled on
                ok = sigma > 0  # enough active rows of full rank; else the LP point stays
                u[ok] = fp.u[ok]
                t = prob.violation(u)
        return u, t, tau, prob, sigma

    def _misfit(self, chain: Chain, z: torch.Tensor, x: torch.Tensor, prob: LayerProblem) -> torch.Tensor:
        """``(B,)`` the last layer's thresholded misfit at ``z``: weighted l_inf violation of its
        rows (``linf``), or the l2 distance of its pre-activation to the rows' bounds (``l2``)."""
        h = chain.forward_all(z)[-2]  # the last layer's input
        if self.norm == "linf":
            return prob.violation(h)
        s_lo, s_hi = prob.row_slack(h)
        return (torch.relu(-s_lo) + torch.relu(-s_hi)).norm(dim=1)

    def _joint(self, chain: Chain, z: torch.Tensor, x: torch.Tensor, prob: LayerProblem,
               budget: Budget | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The joint polish (module doc): ``z`` moved where the misfit falls, and the misfit."""
        with torch.no_grad():
            bounds = (prob.lo, prob.hi, prob.w)
            if self.norm == "linf":
                cand = solve_pattern_lp(chain, z, x, rtol=0.0, rounds=self.joint_rounds, out_bounds=bounds,
                                        budget=budget).z
            else:  # least squares over z on the active rows (lo == hi), the pattern fixed at z
                n = x.shape[1]
                pp = pattern_problem(chain, chain.patterns(z), x, tol=torch.zeros_like(x[:, 0]), out_bounds=bounds)
                eq = prob.lo == prob.hi
                on = eq.to(x.dtype) * prob.w
                J, c = pp.A[:, -n:] * on[..., None], pp.b[:, -n:]
                rhs = torch.where(eq, on * (prob.lo - c), torch.zeros_like(c))  # lo is -inf off the active set
                cand = torch.linalg.lstsq(J.cpu(), rhs.cpu()[..., None]).solution[..., 0].to(z)
            before, after = self._misfit(chain, z, x, prob), self._misfit(chain, cand, x, prob)
            keep = torch.isfinite(after) & (after < before)
            return torch.where(keep[:, None], cand, z), torch.where(keep, after, before)

    def solve(self, chain: Chain, x: torch.Tensor, *, rtol: float, budget: Budget | None = None) -> RawSolution:
        B, L = x.shape[0], len(chain)
        budget = budget or unlimited()
        res = torch.full((B, L), float("nan"), dtype=torch.float64)
        walk = BackwardPass(chain, max_dense_entries=self.max_dense_entries)
        last = chain.layers[-1]
        if self.noise is None:
            budget.stage("noisy: estimating the noise level")
            tau = self._estimate_noise(walk.dense(L - 1), last.bias, last.act, x, chain.input_range(L - 1), rtol=rtol,
                                       budget=budget)
        else:
            tau = torch.full((B,), float(self.noise), dtype=x.dtype, device=x.device).clamp(min=1e-300)
        eps = None  # the certified bound's error carried down (l_inf and l2 with a known noise level)
        if self.noise is not None and self.norm != "l1":
            eps = torch.full((B,), float(self.noise), dtype=x.dtype, device=x.device)
        valid = torch.ones(B, dtype=torch.bool, device=x.device)
        last_prob = None

        def step(i: int, A: torch.Tensor, y: torch.Tensor, rows: torch.Tensor):
            # every sample goes on (rows is the whole batch): the threshold only ever grows
            nonlocal tau, eps, valid, last_prob
            layer, keep = chain.layers[i], torch.ones(B, dtype=torch.bool, device=x.device)
            if self.norm == "l1":
                u, t, tau = self._layer_l1(A, layer.bias, layer.act, y, tau.clone(), chain.input_range(i), budget)
                res[:, i] = t.cpu()
                return u, keep
            u, t, tau, prob, sig = self._layer(A, layer.bias, layer.act, y, tau.clone(), chain.input_range(i), budget,
                                               want_sigma=eps is not None)
            res[:, i] = t.cpu()
            if eps is not None:  # the certified bound, valid while tau >= the noise it must absorb
                # on the active rows S, |A_S (u - u*)| <= t + eps (the fit's misfit plus the noise)
                valid &= (tau >= eps * (1 - 1e-9)) & (sig > 0) & _within(t, tau)
                eps = torch.where(sig > 0, (eps + t) * prob.eq.sum(1).to(x.dtype).sqrt() / sig.clamp(min=1e-300),
                                  torch.full_like(eps, math.inf))
            if i == L - 1:
                last_prob = prob
            return u, keep

        y = walk.run(x, step, budget=budget)
        if not walk.complete:  # the time limit stopped the pass before the latent: no fit, no bound
            raw = RawSolution.of(y, L, method=f"noisy-{self.norm}")
            raw.layer_residuals = res
            raw.messages = [f"{self.norm} fit stopped before reaching the latent"] * B
            return raw
        polished = torch.zeros(B, dtype=torch.bool, device=x.device)
        if self.joint and self.norm != "l1" and L > 1 and piecewise_linear(chain):
            z, misfit = self._joint(chain, y, x, last_prob, budget)
            moved = (z - y).norm(dim=1)
            polished = moved > 0
            if eps is not None:
                eps = eps + moved
            y = z
        bound = torch.full((B,), float("nan"), dtype=torch.float64)
        if eps is not None:
            bound = torch.where(valid, eps, torch.full_like(eps, math.nan)).cpu()
        with torch.no_grad():  # the achieved residual in the chosen norm
            r_out = torch.linalg.vector_norm(chain.forward_all(y)[-1] - x, ord=self.fit_order, dim=1).cpu()
        msgs = [f"{self.norm} fit{' + joint polish' if polished[j] else ''}, ||G(z) - x||_{self.norm[1:]} = "
                f"{r_out[j].item():.3g}, final threshold tau={tau[j].item():.3g}"
                + (f", certified ||z - z*|| <= {bound[j].item():.3g}" if not math.isnan(bound[j]) else "")
                for j in range(B)]
        if polished.any():
            res[:, -1] = torch.where(polished, misfit, res[:, -1].to(x)).cpu().double()
        raw = RawSolution.of(y, L, method=f"noisy-{self.norm}")
        raw.layer_residuals, raw.messages, raw.bound = res, msgs, bound
        return raw
