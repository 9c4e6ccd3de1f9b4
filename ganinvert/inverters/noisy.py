"""Noisy observations (DESIGN.md 4): the layer-wise pass with thresholds.

Per layer, for a ReLU observation ``y = relu(A u + b) + e`` with ``|e|_inf <= eps``:

- ``norm="linf"`` (the paper's main noisy method): minimise ``t`` subject to
  ``|a_j u + b_j - y_j| <= t`` on rows with ``y_j > tau``, ``a_j u + b_j <= y_j + t`` on the
  others, ``u >= 0`` on hidden layers; accepted when ``t <= tau``. It is the one layer LP
  (:class:`ganinvert.lp.LayerProblem`) with the threshold in its bounds. ``tau`` starts at the
  noise level, grows by ``growth`` (1.2) until the LP is feasible, and is carried into the next
  layer. LeakyReLU rows: ``y > tau`` the positive branch, ``y < -tau`` the negative one (scaled
  by ``1 / alpha``), rows in between either.
- ``norm="l2"``: the same schedule picks the threshold, then least squares on the rows
  ``y > tau`` (the active set), then ``u >= 0``.

Joint polish (``joint=True``, default, for generators whose hidden activations are piecewise
linear): the layer-wise pass fits each layer to a target that already carries the previous
layer's error, so its latent error is about twice the noise. Fixing the hidden on/off pattern at
the layer-wise estimate makes ``G`` affine in ``z`` (DESIGN.md 3) and the same thresholded fit
can be solved over all layers at once: the activation-pattern LP (``linf``, descending through
regions as in :func:`~ganinvert.lp.pattern.solve_pattern_lp`) or least squares on the active
output rows (``l2``). The polished ``z`` is kept only where its misfit in the chosen norm is
smaller than the layer-wise one.

When ``noise`` is not given, ``tau`` starts at the LP's smallest l_inf misfit of the last layer
with no threshold: a lower bound on the noise level, measured from the data alone.

Certified error (linf, with ``noise`` given and ``tau >= eps`` at every layer): ``t* <= eps``
since ``u*`` is feasible, so ``|A_S (u - u*)|_inf <= 2 eps`` on the active rows ``S`` and
``||u - u*||_2 <= 2 eps sqrt(|S|) / sigma_min(A_S)`` (``sigma_min`` bounded below rigorously by
the fast path's Cholesky). That bound is the next layer's noise level; the latent's is reported.
After a joint polish the reported bound is that of the layer-wise estimate ``z_lw`` plus
``||z - z_lw||`` (triangle inequality): still certified.
"""

from __future__ import annotations

import logging
import math

import torch

from ..activations import Identity, LeakyReLU, ReLU
from ..chain import Chain
from ..errors import InvalidInputError
from ..lp.fastpath import lstsq_fast_path
from ..lp.ipm import solve_ipm
from ..lp.pattern import applies, pattern_problem, patterns_at, solve_pattern_lp
from ..lp.problem import LayerProblem
from ..operators import DEFAULT_MAX_DENSE
from .base import Inverter, RawSolution

logger = logging.getLogger(__name__)

NORMS = ("linf", "l2")


def threshold_bounds(act, y: torch.Tensor, tau: torch.Tensor):
    """``(lo, hi, w)`` of the thresholded rows for observation ``y`` (B, n), ``tau`` (B, 1)."""
    inf = torch.full_like(y, math.inf)
    if isinstance(act, ReLU):
        on = y > tau
        return torch.where(on, y, -inf), y.clone(), torch.ones_like(y)
    if isinstance(act, LeakyReLU):
        a = act.negative_slope
        pos, neg = y > tau, y < -tau
        lo = torch.where(pos, y, torch.where(neg, y / a, (y - tau) / a))
        hi = torch.where(pos, y, torch.where(neg, y / a, y + tau))
        return lo, hi, torch.where(neg, torch.full_like(y, a), torch.ones_like(y))
    if isinstance(act, Identity):
        return y.clone(), y.clone(), torch.ones_like(y)
    raise InvalidInputError(f"Expected: ReLU, LeakyReLU or no activation for noisy inversion, Got: {act!r}. "
                            "Hint: for Tanh/Sigmoid outputs use method='hybrid' or 'adam'")


class Noisy(Inverter):
    """Layer-wise inversion of noisy observations (see the module doc).

    Args:
        norm: ``"linf"`` (LP per layer with the threshold schedule) or ``"l2"`` (least squares
            on the active set).
        noise: the l_inf noise level ``eps`` of x (None: estimated, see the module doc).
        growth: factor of the threshold schedule; max_steps: at most this many growths per layer.
        joint: polish over all layers at once with the hidden pattern fixed (module doc).
        joint_rounds: pattern LPs of the ``linf`` polish's descent.
    """

    name = "noisy"

    def __init__(self, *, norm: str = "linf", noise: float | None = None, growth: float = 1.2,
                 max_steps: int = 80, max_dense_entries: int = DEFAULT_MAX_DENSE, joint: bool = True,
                 joint_rounds: int = 5) -> None:
        if norm not in NORMS:
            raise InvalidInputError(f"Expected norm in {NORMS}, Got: {norm!r}"
                                    + (" (the l1 'relax' LP is not built yet)" if norm == "l1" else ""))
        if noise is not None and not noise >= 0:
            raise InvalidInputError(f"Expected noise >= 0 (the l_inf noise level of x) or None, Got: {noise}")
        if not growth > 1 or max_steps < 1:
            raise InvalidInputError(f"Expected growth > 1 and max_steps >= 1, Got: {growth}, {max_steps}")
        self.norm, self.noise, self.growth = norm, noise, float(growth)
        self.max_steps, self.max_dense_entries = int(max_steps), int(max_dense_entries)
        if joint_rounds < 1:
            raise InvalidInputError(f"Expected joint_rounds >= 1, Got: {joint_rounds}")
        self.joint, self.joint_rounds = bool(joint), int(joint_rounds)

    def _layer(self, A, b, act, y, tau, u_range, *, want_sigma: bool):
        """Solve one layer for every sample, growing ``tau`` (B,) where infeasible. Returns
        ``(u, t, tau, prob, sigma)``: ``prob`` is the layer LP at the final thresholds and
        ``sigma`` a lower bound on ``sigma_min`` of its active rows (None unless l2 or asked)."""
        B, k = y.shape[0], A.shape[1]
        u = torch.zeros(B, k, dtype=y.dtype, device=y.device)
        t = torch.full((B,), math.inf, dtype=y.dtype, device=y.device)
        todo = torch.arange(B, device=y.device)
        for _ in range(self.max_steps):
            lo, hi, w = threshold_bounds(act, y[todo], tau[todo, None])
            sol = solve_ipm(LayerProblem(A, b, lo, hi, w, *u_range))
            u[todo], t[todo] = sol.u, sol.t
            bad = sol.t > tau[todo] * (1 + 1e-9) + 1e-12
            if not bad.any():
                break
            todo = todo[bad]
            tau[todo] *= self.growth
        lo, hi, w = threshold_bounds(act, y, tau[:, None])
        prob = LayerProblem(A, b, lo, hi, w, *u_range)
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

    def _joint(self, chain: Chain, z: torch.Tensor, x: torch.Tensor,
               prob: LayerProblem) -> tuple[torch.Tensor, torch.Tensor]:
        """The joint polish (module doc): ``z`` moved where the misfit falls, and the misfit."""
        with torch.no_grad():
            bounds = (prob.lo, prob.hi, prob.w)
            if self.norm == "linf":
                cand = solve_pattern_lp(chain, z, x, rtol=0.0, rounds=self.joint_rounds, out_bounds=bounds).z
            else:  # least squares over z on the active rows (lo == hi), the pattern fixed at z
                n = x.shape[1]
                pp = pattern_problem(chain, patterns_at(chain, z), x, tol=torch.zeros_like(x[:, 0]), out_bounds=bounds)
                eq = prob.lo == prob.hi
                on = eq.to(x.dtype) * prob.w
                J, c = pp.A[:, -n:] * on[..., None], pp.b[:, -n:]
                rhs = torch.where(eq, on * (prob.lo - c), torch.zeros_like(c))  # lo is -inf off the active set
                cand = torch.linalg.lstsq(J.cpu(), rhs.cpu()[..., None]).solution[..., 0].to(z)
            before, after = self._misfit(chain, z, x, prob), self._misfit(chain, cand, x, prob)
            keep = torch.isfinite(after) & (after < before)
            return torch.where(keep[:, None], cand, z), torch.where(keep, after, before)

    def solve(self, chain: Chain, x: torch.Tensor, *, rtol: float) -> RawSolution:
        B, L = x.shape[0], len(chain)
        res = torch.full((B, L), float("nan"), dtype=torch.float64)
        y = x
        last = chain.layers[-1]
        A_last = last.op.dense(max_entries=self.max_dense_entries)
        if self.noise is None:  # the smallest l_inf misfit with no threshold: a lower bound on the noise
            lo, hi, w = threshold_bounds(last.act, x, torch.zeros(B, 1, dtype=x.dtype, device=x.device))
            t0 = solve_ipm(LayerProblem(A_last, last.bias, lo, hi, w, *chain.input_range(L - 1))).t
            tau = torch.maximum(t0, rtol * x.abs().amax(1))
        else:
            tau = torch.full((B,), float(self.noise), dtype=x.dtype, device=x.device).clamp(min=1e-300)
        eps = None if self.noise is None else torch.full((B,), float(self.noise), dtype=x.dtype, device=x.device)
        valid = torch.ones(B, dtype=torch.bool, device=x.device)
        for i in reversed(range(L)):
            layer = chain.layers[i]
            A = A_last if i == L - 1 else layer.op.dense(max_entries=self.max_dense_entries)
            u, t, tau, prob, sig = self._layer(A, layer.bias, layer.act, y, tau.clone(), chain.input_range(i),
                                               want_sigma=eps is not None)
            res[:, i] = t.cpu()
            if eps is not None:  # the certified bound, valid while tau >= the noise it must absorb
                valid &= (tau >= eps * (1 - 1e-9)) & (sig > 0) & (t <= tau * (1 + 1e-9) + 1e-12)
                eps = torch.where(sig > 0, 2 * eps * prob.eq.sum(1).to(x.dtype).sqrt() / sig.clamp(min=1e-300),
                                  torch.full_like(eps, math.inf))
            if i == L - 1:
                last_prob = prob
            y = u
        polished = torch.zeros(B, dtype=torch.bool, device=x.device)
        if self.joint and L > 1 and applies(chain):
            z, misfit = self._joint(chain, y, x, last_prob)
            moved = (z - y).norm(dim=1)
            polished = moved > 0
            if eps is not None:
                eps = eps + moved
            y = z
        bound = torch.full((B,), float("nan"), dtype=torch.float64)
        if eps is not None:
            bound = torch.where(valid, eps, torch.full_like(eps, math.nan)).cpu()
        msgs = [f"{self.norm} fit{' + joint polish' if polished[j] else ''}, final threshold tau={tau[j].item():.3g}" + (
            f", certified ||z - z*|| <= {bound[j].item():.3g}" if not math.isnan(bound[j]) else "") for j in range(B)]
        if polished.any():
            res[:, -1] = torch.where(polished, misfit, res[:, -1].to(x)).cpu().double()
        raw = RawSolution(z=y, layer_residuals=res, unique=torch.zeros(B, L, dtype=torch.bool),
                          methods=[f"noisy-{self.norm}"] * B, messages=msgs,
                          infeasible=torch.zeros(B, dtype=torch.bool), failed=torch.zeros(B, dtype=torch.bool),
                          bound=bound)
        return raw
