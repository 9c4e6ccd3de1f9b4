"""The activation-pattern LP (docs/design.md §3.3): with the on/off pattern of every hidden unit fixed,
a piecewise-linear generator is affine in ``z`` on a polyhedron (the pattern's region), so
"find ``z`` in that region with ``G(z) = x``" is one LP in ``z`` over all layers at once.

The LP is :class:`LayerProblem` again, with a per-sample operator: its rows are every hidden
pre-activation (``p >= 0`` where the pattern says on, ``p <= 0`` where off: the region) and the
output rows of the last activation (equalities on positive pixels, one-sided rows on zeros,
exactly as in the layer-wise LP). Its optimum is the smallest l_inf output misfit in the region.

When that misfit is not zero, the search moves to a neighbouring region: the region rows are
weighted heavily (``sign_weight``), so they act as hard walls, and the walls that stop the
misfit from falling are those with a positive multiplier at the optimum. Flipping exactly those
units gives a region whose closure still holds the current point (there every flipped unit sits
at ``p = 0``, where both patterns give the same output), so the next LP starts no worse: the
misfit never rises from round to round. A seed stops at ``G(z) = x``, at a local minimum (no
wall with a positive multiplier, or no progress for ``stall`` rounds), or after ``rounds`` LPs.
Measured on the paper's decoder (the samples neither the layer-wise pass nor one Adam polish
solve): 14% of seeds reach ``G(z) = x``, against 4% when the pattern is instead re-read at a
soft-walled optimum. Seeds come from the layer-wise estimate and Adam restarts (``Auto``).

Only the latent is a variable (``k`` columns), so conv generators fit: the rows are built by
pushing the ``k`` latent directions through the matrix-free operators.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..budget import Budget
from ..chain import Chain
from ..tolerances import target_scale
from .ipm import solve_ipm
from .problem import LayerProblem

logger = logging.getLogger(__name__)


def applies(chain: Chain) -> bool:
    """True when every hidden activation is piecewise linear (ReLU, LeakyReLU, identity: their
    :attr:`~ganinvert.activations.Activation.piecewise_linear`); the output activation may be
    anything the layer-wise LP handles."""
    return all(layer.act.piecewise_linear for layer in chain.layers[:-1])


def hidden_patterns(chain: Chain, z: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The on/off pattern (``p >= 0``) of every hidden layer at ``z`` and the last layer's input."""
    hidden = chain.walk(z, layers=len(chain) - 1)
    return [p >= 0 for p, _ in hidden], hidden[-1][1] if hidden else z.reshape(z.shape[0], -1)


def patterns_at(chain: Chain, z: torch.Tensor) -> list[torch.Tensor]:
    """The on/off pattern (``p >= 0``) of every hidden layer at ``z`` (B, k): ``[(B, n_l)]``."""
    return hidden_patterns(chain, z)[0]


def affine_pieces(chain: Chain, patterns: list[torch.Tensor], batch: int, *, dtype: torch.dtype,
                  device: torch.device | str | None = None):
    """With the hidden slopes fixed by ``patterns`` ``[(B, n_l) bool]``, every pre-activation is
    affine in ``z``: ``p_l = J_l z + c_l``. Yields ``(i, layer, J_l (B, n_l, k), c_l (B, n_l))``
    for each layer, first to last; ``J_l`` is built by pushing the ``k`` latent directions through
    the operators and ``c_l`` by pushing ``z = 0``."""
    B, k = batch, chain.in_dim
    c = torch.zeros(B, k, dtype=dtype, device=device)  # the image of z = 0
    J = torch.eye(k, dtype=dtype, device=device).expand(B, k, k)  # d(layer input)/dz, (B, dim, k)
    for i, layer in enumerate(chain.layers):
        c = layer.op.matvec(c) + layer.bias
        J = layer.op.matvec(J.transpose(1, 2).reshape(B * k, -1)).reshape(B, k, -1).transpose(1, 2)
        yield i, layer, J, c
        if i < len(chain) - 1 and layer.act.kinked:
            s = layer.act.branch_slope(patterns[i], like=c)
            c, J = s * c, s.unsqueeze(-1) * J


def linearize(chain: Chain, z: torch.Tensor, *, jacobian_chain: Chain | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The last layer's pre-activation at ``z`` (B, k) and its Jacobian: ``(p (B, n), J (B, n, k))``,
    exact on the activation region of ``z`` (hidden activations piecewise linear, see
    :func:`applies`). ``jacobian_chain``: the same chain in another dtype (float32) to build ``J``
    in; ``p`` and the region always come from ``chain``."""
    pats, h = hidden_patterns(chain, z)
    last = chain.layers[-1]
    jc = jacobian_chain or chain
    *_, (_, _, J, _) = affine_pieces(jc, pats, z.shape[0], dtype=jc.dtype, device=z.device)
    return last.op.matvec(h) + last.bias, J.to(z.dtype)


def pattern_problem(chain: Chain, patterns: list[torch.Tensor], x: torch.Tensor, *,
                    tol: torch.Tensor, sign_weight: float = 1.0, out_bounds=None) -> LayerProblem:
    """The pattern LP for hidden patterns ``[(B, n_l) bool]`` and observations ``x`` (B, n): the
    region rows of every kinked hidden layer (:func:`affine_pieces`) and the output rows.

    ``tol`` (B,) decides which output pixels are zero; ``sign_weight`` weighs the region rows
    against the output rows (large: walls). ``out_bounds`` ``(lo, hi, w)`` (B, n) replaces the
    output rows' bounds (noisy observations:
    :meth:`ganinvert.activations.Activation.threshold_bounds`).
    """
    A_rows, b_rows, lo, hi, w = [], [], [], [], []
    for i, layer, J, c in affine_pieces(chain, patterns, x.shape[0], dtype=x.dtype, device=x.device):
        if i == len(chain) - 1:
            if out_bounds is None:
                rb = layer.act.bounds(x, tol=tol[:, None])
                out_bounds = (rb.lo, rb.hi, rb.weight)
            A_rows.append(J), b_rows.append(c), lo.append(out_bounds[0]), hi.append(out_bounds[1])
            w.append(out_bounds[2])
        elif layer.act.kinked:  # the region: p >= 0 where the pattern says on, p <= 0 where off
            on, inf = patterns[i], torch.full_like(c, float("inf"))
            A_rows.append(J), b_rows.append(c), w.append(torch.full_like(c, sign_weight))
            lo.append(torch.where(on, torch.zeros_like(c), -inf))
            hi.append(torch.where(on, inf, torch.zeros_like(c)))
    return LayerProblem(torch.cat(A_rows, 1), torch.cat(b_rows, 1), torch.cat(lo, 1), torch.cat(hi, 1),
                        torch.cat(w, 1))


def _region_slices(chain: Chain) -> list[tuple[int, slice]]:
    """``(layer, rows)`` of each hidden layer's region rows in :func:`pattern_problem`'s rows."""
    out, at = [], 0
    for i, layer in enumerate(chain.layers[:-1]):
        if layer.act.kinked:
            out.append((i, slice(at, at + layer.op.out_dim)))
            at += layer.op.out_dim
    return out


@dataclass
class PatternSolution:
    """Attributes: ``z`` (B, k) best point found; ``residual`` (B,) its relative output residual
    ``||G(z) - x|| / ||x||``; ``rounds`` (B,) pattern LPs solved per sample; ``misfit`` (B,) the
    last LP's optimum, the least weighted l_inf output misfit in the last region (``inf`` where
    no LP ran); ``local_min`` (B,) bool: the seed stopped at a local minimum (no wall to cross,
    or no progress for ``stall`` rounds), not at ``G(z) = x`` nor at the round limit."""

    z: torch.Tensor
    residual: torch.Tensor
    rounds: torch.Tensor
    misfit: torch.Tensor
    local_min: torch.Tensor


def solve_pattern_lp(chain: Chain, z0: torch.Tensor, x: torch.Tensor, *, rtol: float, rounds: int = 20,
                     stall: int = 3, sign_weight: float = 1e3, max_iter: int = 100, chunk: int | None = None,
                     patterns: list[torch.Tensor] | None = None, group: torch.Tensor | None = None,
                     out_bounds=None, budget: Budget | None = None) -> PatternSolution:
    """Descend through regions from the pattern at ``z0`` (or the given first ``patterns``), one
    LP per round, flipping the walls with positive multipliers (see the module doc), until
    ``||G(z) - x|| <= rtol ||x||``, a local minimum, or ``rounds`` LPs; per sample the best ``z``
    seen is kept. Each row of ``z0``/``x`` is one seed: repeat ``x`` to try several per sample.

    ``chunk`` bounds the samples per LP batch (default: about 64 MiB of rows per batch).
    ``group`` (B,) long, when given, names the sample each seed belongs to: once one seed of a
    group reaches ``G(z) = x`` the group's other seeds stop. ``out_bounds`` ``(lo, hi, w)`` (B, n):
    the output rows' bounds for noisy observations (see :func:`pattern_problem`); the descent
    then minimises the thresholded misfit (pass ``rtol=0``: no seed reaches ``G(z) = x``).
    ``budget``: checked before each round (:mod:`ganinvert.budget`).
    """
    B, k = z0.shape
    if B == 0:
        return PatternSolution(z=z0.clone(), residual=z0.new_zeros(0), rounds=torch.zeros(0, dtype=torch.long),
                               misfit=z0.new_zeros(0), local_min=torch.zeros(0, dtype=torch.bool))
    slices = _region_slices(chain)
    with torch.no_grad():
        best_z = z0.clone()
        best = chain.relative_residual(z0, x)
        n_rows = sum(layer.op.out_dim for layer in chain.layers)
        chunk = chunk or max(1, (1 << 23) // (n_rows * (k + 1)))
        used = torch.zeros(B, dtype=torch.long, device=z0.device)
        misfit = torch.full((B,), float("inf"), dtype=x.dtype, device=x.device)  # best LP optimum so far
        last = misfit.clone()
        idle = torch.zeros(B, dtype=torch.long, device=z0.device)  # rounds without progress
        live = (best > rtol).nonzero().flatten()
        z = z0.clone()
        pats = patterns_at(chain, z0) if patterns is None else [p.clone() for p in patterns]
        local_min = torch.zeros(B, dtype=torch.bool, device=z0.device)
        scale = target_scale(x)
        for r in range(rounds):
            if live.numel() == 0 or (budget is not None and budget.expired):
                break
            stuck = torch.zeros(B, dtype=torch.bool, device=z0.device)
            for s in range(0, live.numel(), chunk):
                idx = live[s:s + chunk]
                ob = None if out_bounds is None else tuple(o[idx] for o in out_bounds)
                prob = pattern_problem(chain, [p[idx] for p in pats], x[idx], tol=0.1 * rtol * scale[idx],
                                       sign_weight=sign_weight, out_bounds=ob)
                sol = solve_ipm(prob, u0=z[idx], max_iter=max_iter)
                z[idx] = sol.u
                used[idx] += 1
                walls = sol.dual > 1e-6  # multipliers sum to 1 over the rows
                flips = [(i, walls[:, rows] & sol.ok[:, None]) for i, rows in slices]
                moved = torch.stack([f.any(1) for _, f in flips]).any(0) if flips else torch.zeros_like(sol.ok)
                for i, f in flips:
                    pats[i][idx] ^= f
                reread = ~sol.ok  # no reliable multipliers: take the pattern where the solver stopped
                if reread.any():
                    for p, q in zip(pats, patterns_at(chain, sol.u[reread]), strict=True):
                        p[idx[reread]] = q
                last[idx] = sol.t
                progress = sol.t < misfit[idx] * (1 - 1e-6)
                misfit[idx] = torch.minimum(misfit[idx], sol.t)
                idle[idx] = torch.where(progress, torch.zeros_like(idle[idx]), idle[idx] + 1)
                stuck[idx] = (sol.ok & ~moved) | (idle[idx] >= stall)
            res = chain.relative_residual(z[live], x[live])
            better = res < best[live]
            best_z[live[better]], best[live[better]] = z[live[better]], res[better]
            local_min[live] = stuck[live] & (best[live] > rtol)
            live = live[(best[live] > rtol) & ~stuck[live]]
            if group is not None and live.numel():
                done = torch.zeros(int(group.max()) + 1, dtype=torch.bool, device=z0.device)
                done[group[best <= rtol]] = True
                live = live[~done[group[live]]]
            logger.debug("pattern LP round %d: %d seeds still descending", r + 1, live.numel())
    return PatternSolution(z=best_z, residual=best, rounds=used, misfit=last, local_min=local_min)
