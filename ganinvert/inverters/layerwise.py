"""The layer-wise inverter of Lei et al. (2019): last layer first, each recovered input becoming
the next target, every layer solved exactly and certified (see :mod:`ganinvert.lp`)."""

from __future__ import annotations

import logging
import numbers
from typing import Mapping

import torch

from ..backward import BackwardPass
from ..budget import Budget, unlimited
from ..chain import Chain
from ..errors import InvalidInputError, LayerTooLargeError
from ..lp import SOLVER_OPTIONS, SOLVERS, LayerSolution, invert_layer
from ..lp.layer import beyond_lp, certify_at
from ..lp.cvx import lp_layer
from ..lp.problem import MAX_DENSE_INPUT
from ..operators import DEFAULT_MAX_DENSE
from ..tolerances import target_scale
from .base import Anchors, Inverter, RawSolution

logger = logging.getLogger(__name__)


def _solver_options(options: Mapping[str, float | int] | None) -> dict[str, float | int]:
    """``options`` checked and typed: ``tol`` a float > 0, ``max_iter`` an integer >= 1."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - SOLVER_OPTIONS)
    if unknown:
        raise InvalidInputError(f"Expected solver_options among {sorted(SOLVER_OPTIONS)}, Got: {unknown}")
    tol, max_iter = opts.get("tol", 1.0), opts.get("max_iter", 1)
    if (isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol > 0
            or isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1):
        raise InvalidInputError(f"Expected solver_options tol > 0 (a number) and max_iter >= 1 (an integer), "
                                f"Got: {opts}")
    return {k: float(v) if k == "tol" else int(v) for k, v in opts.items()}


class Layerwise(Inverter):
    """Exact layer-wise inversion.

    Args:
        solver: LP solver for samples the fast path does not certify: ``"ipm"`` (batched
            interior point in torch, default), ``"highs"`` (HiGHS per sample, the reference) or
            ``"cvxpylayers"`` (each layer LP as a ``CvxpyLayer``; with
            ``invert(differentiable=True)`` the gradient is then the LP's own, chained through
            every layer: the reference the native derivative is tested against, and much slower).
        fast_path: try certified least squares before the LP.
        rank_rtol: relative singular-value threshold of the rank and uniqueness checks.
        layer_rtol: per-layer feasibility tolerance as a fraction of the final ``rtol``.
        max_dense_entries: largest dense layer matrix to materialise.
        max_lp_dim: largest layer input solved by the dense LP (default
            :data:`~ganinvert.lp.problem.MAX_DENSE_INPUT`, the derivative's limit too); larger
            layers that the fast path cannot certify are reported FAILED with the reason, instead
            of exhausting memory.
        solver_options: the LP solver's own ``tol`` and ``max_iter`` (see
            :data:`ganinvert.lp.SOLVERS`), e.g. ``{"max_iter": 200}``; its defaults when omitted.
        lp: False: the least-squares fast path only, a quick check (``auto`` runs it first): a
            sample it neither certifies nor proves out of range stops FAILED, with the reason.
    """

    name = "layerwise"

    def __init__(self, *, solver: str = "ipm", fast_path: bool = True, rank_rtol: float = 1e-8,
                 layer_rtol: float = 0.1, max_dense_entries: int = DEFAULT_MAX_DENSE,
                 max_lp_dim: int = MAX_DENSE_INPUT, solver_options: Mapping[str, float | int] | None = None,
                 lp: bool = True) -> None:
        if solver not in SOLVERS:
            raise InvalidInputError(f"unknown solver {solver!r}; Expected one of {sorted(SOLVERS)}")
        if not lp and not fast_path:
            raise InvalidInputError("Expected the fast path, the LP or both, Got: fast_path=False and lp=False. "
                                    "Fix: drop one of them")
        if not 0 < rank_rtol < 1 or not 0 < layer_rtol <= 1:
            raise InvalidInputError(f"Expected 0 < rank_rtol < 1 and 0 < layer_rtol <= 1, Got: "
                                    f"rank_rtol={rank_rtol}, layer_rtol={layer_rtol}")
        self.solver, self.fast_path = solver, bool(fast_path)
        self.rank_rtol, self.layer_rtol = float(rank_rtol), float(layer_rtol)
        self.max_dense_entries = int(max_dense_entries)
        self.max_lp_dim = int(max_lp_dim)
        self.solver_options = _solver_options(solver_options)
        self.lp = bool(lp)

    @property
    def lp_layer(self):
        """``solver="cvxpylayers"``: gradients through the layer LPs themselves (see
        :attr:`Inverter.lp_layer`)."""
        return lp_layer if self.solver == "cvxpylayers" else None

    def solve_layer(self, chain: Chain, i: int, A: torch.Tensor, y: torch.Tensor, *, rtol: float,
                    fast_path: bool | None = None, budget: Budget | None = None) -> LayerSolution:
        """One layer with this inverter's options (the step of its backward pass, and of the
        uniqueness check along a known ``G(z)``).

        Args:
            chain: the generator; i: the layer's index; A: its dense ``(n, k)`` operator.
            y: ``(b, n)`` float64 targets of the layer's output.
            rtol: the whole inversion's tolerance (the layer gets ``layer_rtol * rtol``).
            fast_path: override the inverter's ``fast_path``.
            budget: its time limit stops the LP solver as it goes (no limit: None).

        Returns:
            The layer's :class:`~ganinvert.lp.LayerSolution`.
        """
        layer = chain.layers[i]
        return invert_layer(A, layer.bias, layer.act, y, u_range=chain.input_range(i),
                            rtol=self.layer_rtol * rtol, solver=self.solver if self.lp else None,
                            rank_rtol=self.rank_rtol,
                            fast_path=self.fast_path if fast_path is None else fast_path,
                            max_lp_dim=self.max_lp_dim, solver_options=self.solver_options,
                            stop=None if budget is None or budget.deadline is None else lambda: budget.expired)

    def certify_layer(self, chain: Chain, i: int, A: torch.Tensor, y: torch.Tensor, u: torch.Tensor, *,
                      rtol: float) -> torch.Tensor:
        """``(b,)`` bool: layer ``i``'s pre-image of ``y`` is the single point ``u`` it was given (the
        uniqueness check along a known ``G(z)``, with this inverter's tolerances; no LP)."""
        layer = chain.layers[i]
        return certify_at(A, layer.bias, layer.act, y, u, u_range=chain.input_range(i),
                          rtol=self.layer_rtol * rtol, rank_rtol=self.rank_rtol)

    def solve(self, chain: Chain, x: torch.Tensor, *, rtol: float, budget: Budget | None = None) -> RawSolution:
        B, L = x.shape[0], len(chain)
        budget = budget or unlimited()
        raw = RawSolution.empty(B, L, chain.in_dim, dtype=x.dtype, device=x.device)
        last = chain.layers[-1].op
        if last.out_dim < last.in_dim and last.in_dim > self.max_lp_dim:
            # a last layer that contracts past the LP's limit: least squares can neither pin its input
            # nor prove x out of its range, so no step could succeed; its matrix is not even built
            # (an Upsample DCGAN's 784 x 50176 took 94 s)
            raw.failed[:] = True
            raw.messages = [f"layer {L - 1}: {beyond_lp(last.out_dim, last.in_dim, self.max_lp_dim)}"] * B
            raw.methods = ["none"] * B
            raw.anchors = Anchors(level=torch.full((B,), L, dtype=torch.long), targets={},
                                  ambiguous=torch.zeros(B, dtype=torch.bool))
            return raw

        level = torch.full((B,), L, dtype=torch.long)  # see Anchors
        targets: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        ambiguous = torch.zeros(B, dtype=torch.bool)

        def step(i: int, A: torch.Tensor, y: torch.Tensor, rows: torch.Tensor):
            sol = self.solve_layer(chain, i, A, y, rtol=rtol, budget=budget)
            idx = rows.cpu()
            top = level[idx] == i + 1  # every layer above pinned its input: y is exact
            down = top & (sol.unique & sol.solver_ok).cpu()
            stop = top & ~down
            if down.any():  # their input is exact: the anchor, should the time limit end the pass here
                targets[i] = (idx[down], sol.u[down.to(sol.u.device)])
            if stop.any():  # this layer's pre-image is not a point: y is as far as the pass is sure
                targets[i + 1] = (idx[stop], y[stop.to(y.device)])
                ambiguous[idx[stop & (sol.solver_ok & ~sol.unique).cpu()]] = True
            level[idx[down]] = i
            raw.layer_residuals[idx, i], raw.unique[idx, i] = sol.residual.cpu(), sol.unique.cpu()
            if not budget.expired:  # an LP the time limit stopped did not fail: its sample is open
                raw.failed[idx] |= ~sol.solver_ok.cpu()
            if i == L - 1:  # x itself is out of reach of the last layer: no latent can explain it
                tol = self.layer_rtol * rtol * target_scale(y)  # the layer's own tolerance
                raw.infeasible[idx] = (sol.solver_ok & (sol.optimum > tol)).cpu()
            for j, b in enumerate(idx.tolist()):  # layers joined by "/", first layer first (see RawSolution)
                raw.methods[b] = f"{sol.methods[j]}/{raw.methods[b]}" if raw.methods[b] else sol.methods[j]
                if sol.messages[j]:
                    raw.messages[b] += ("; " if raw.messages[b] else "") + f"layer {i}: {sol.messages[j]}"
            logger.info("layer %d: %d/%d samples certified unique", i, int(sol.unique.sum()), len(idx))
            return sol.u, sol.solver_ok  # a failed sample has no meaningful target for the layer below

        raw.z = BackwardPass(chain, max_dense_entries=self.max_dense_entries).run(x, step, budget=budget)
        raw.anchors = Anchors(level=level, targets=targets, ambiguous=ambiguous)
        return raw

    def solve_or_skip(self, chain: Chain, x: torch.Tensor, *, rtol: float, budget: Budget) -> RawSolution:
        """:meth:`solve`, where a layer too large to write down leaves every sample failed with the
        reason instead of raising (``auto``'s searches go on: they need no matrix)."""
        try:
            return self.solve(chain, x, rtol=rtol, budget=budget)
        except LayerTooLargeError as e:
            raw = RawSolution.empty(x.shape[0], len(chain), chain.in_dim, dtype=x.dtype, device=x.device, method="none")
            raw.failed[:] = True
            raw.messages = [f"layer-wise pass skipped: {e}"] * x.shape[0]
            return raw
