"""Conditional generators: ``G(z, *cond)``, and which of several candidate conditions explains an
image.

``invert(G, x, cond=y)`` splits the batch by condition: for each distinct condition the
generator with that condition fixed (:class:`~ganinvert.adapters.Conditioned`) is a generator of
``z`` alone, whose every value computed from the condition (a label's embedding, its
concatenation with ``z``, a product with an embedding) is a constant of the chain, so the exact
engine runs on it as on any chain. :func:`invert_candidates` tries every candidate condition on
every sample and says which admit ``G(z, y) = x``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .adapters import Conditioned, closed_over_tensors
from .errors import InvalidInputError
from .result import InversionResult

logger = logging.getLogger(__name__)


def as_conditions(cond: object) -> tuple[torch.Tensor, ...]:
    """``cond`` as a tuple of tensors, or a typed error."""
    parts = tuple(cond) if isinstance(cond, (tuple, list)) else (cond,)
    if not parts or not all(isinstance(c, torch.Tensor) for c in parts):
        got = ", ".join(type(c).__name__ for c in parts) or "an empty sequence"
        raise InvalidInputError(f"Expected: cond as a tensor or a tuple of tensors (the generator's arguments after "
                                f"z, batch first), Got: {got}")
    return parts


def groups(cond: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """The samples sharing each distinct condition: ``[index (n_g,)]``, first appearance first."""
    B = cond[0].shape[0]
    key = torch.cat([c.detach().reshape(B, -1).to(device="cpu", dtype=torch.float64) for c in cond], 1)
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    order = list(dict.fromkeys(inverse.tolist()))  # the groups in order of first appearance
    return [(inverse == g).nonzero().flatten() for g in order]


def each_condition(invert: Callable[..., InversionResult], generator, x: torch.Tensor, cond: object, *,
                   mask: torch.Tensor | None, time_limit: float | None, **options) -> InversionResult:
    """:func:`ganinvert.invert` with ``cond=``: once per distinct condition, on its samples, with
    ``G(., *cond)`` fixed; the remaining time is shared among the groups still to run. A condition
    with one row (or none) holds for every sample."""
    if not isinstance(x, torch.Tensor) or x.dim() == 0:
        raise InvalidInputError(f"Expected: x as a torch.Tensor (B, ...), Got: {type(x).__name__}")
    parts = as_conditions(cond)
    if all(c.dim() and c.shape[0] == x.shape[0] for c in parts):
        split = groups(parts)
    elif all(c.dim() == 0 or c.shape[0] == 1 for c in parts):
        split, parts = None, tuple(c.reshape(1, *c.shape[1:]) if c.dim() else c.reshape(1) for c in parts)
    else:
        raise InvalidInputError(f"Expected: each cond tensor with the batch first, {x.shape[0]} rows like x (or one "
                                f"row for all), Got: shapes {[tuple(c.shape) for c in parts]}. Fix: one condition "
                                f"per sample, e.g. labels of shape ({x.shape[0]},)")
    if split is None or len(split) == 1:
        return invert(Conditioned(generator, tuple(c[:1] for c in parts)), x, mask=mask, time_limit=time_limit,
                      **options)
    t0 = time.perf_counter()
    per_sample_mask = isinstance(mask, torch.Tensor) and mask.dim() == x.dim() and mask.shape[0] == x.shape[0]
    results = []
    for g, idx in enumerate(split):
        left = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.0) / (len(split) - g)
        G = Conditioned(generator, tuple(c[idx[:1].to(c.device)] for c in parts))
        m = mask[idx.to(mask.device)] if per_sample_mask else mask
        results.append((idx, invert(G, x[idx.to(x.device)], mask=m, time_limit=left, **options)))
    logger.info("cond: %d distinct conditions over %d samples", len(split), x.shape[0])
    return InversionResult.gather(results, x.shape[0])


@dataclass
class ConditionsResult:
    """What :func:`ganinvert.invert_conditions` returns, for ``B`` samples and ``C`` candidate conditions.

    Attributes:
        results: one :class:`InversionResult` per candidate.
        residual: ``(B, C)`` float64: ``||G(z, y_c) - x|| / ||x||`` at each candidate's answer.
        admits: ``(B, C)`` bool: ``G(z, y_c) = x`` reached (status EXACT or EXACT_NONUNIQUE:
            certified by the exact engine; a black box never certifies).
        best: ``(B,)`` long: the candidate with the smallest residual.
    """

    results: list[InversionResult]
    residual: torch.Tensor
    admits: torch.Tensor
    best: torch.Tensor

    def summary(self) -> str:
        n = self.admits.sum(1)
        return (f"{self.admits.shape[0]} samples x {self.admits.shape[1]} candidate conditions: "
                f"{int((n == 1).sum())} explained by exactly one, {int((n > 1).sum())} by several, "
                f"{int((n == 0).sum())} by none")


def invert_candidates(invert: Callable[..., InversionResult], generator, x: torch.Tensor, candidates: object, *,
                      time_limit: float | None = None, **options) -> ConditionsResult:
    """Which of the ``candidates`` conditions explain each image of ``x``: :func:`ganinvert.invert`
    with ``cond=`` each candidate in turn (a tensor, or tuple of tensors, with one row per candidate,
    e.g. ``torch.arange(10)`` for a class-conditional generator's labels), the time limit shared
    among them. The result says per sample and candidate whether ``G(z, y) = x`` was reached
    (certified by the exact engine where the generator converts) and which candidate fits best.
    ``options``: those of :func:`ganinvert.invert`. (The body of :func:`ganinvert.invert_conditions`,
    which passes ``invert``.)"""
    parts = as_conditions(candidates)
    if any(p.dim() == 0 or p.shape[0] != parts[0].shape[0] for p in parts):
        raise InvalidInputError(f"Expected: candidates as a tensor (or tuple of tensors) with one row per candidate "
                                f"condition, Got: shapes {[tuple(p.shape) for p in parts]}. Fix: e.g. "
                                "torch.arange(10) for the ten labels of a class-conditional generator")
    C = parts[0].shape[0]
    t0, results = time.perf_counter(), []
    for c in range(C):
        left = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.0) / (C - c)
        results.append(invert(generator, x, cond=tuple(p[c:c + 1] for p in parts), time_limit=left, **options))
    residual = torch.stack([r.residual for r in results], 1)
    admits = torch.stack([r.solved for r in results], 1)
    best = torch.where(torch.isnan(residual), torch.full_like(residual, float("inf")), residual).argmin(1)
    return ConditionsResult(results, residual, admits, best)


def point_to_cond(generator, x, error: Exception) -> None:
    """A callable that closes over a tensor with one row per sample of ``x`` (``lambda z: G(z,
    labels)``) cannot run on the probe's batch: say so, and point to ``cond=``."""
    if isinstance(generator, nn.Module) or not isinstance(x, torch.Tensor) or x.dim() < 2:
        return
    rows = {n: tuple(t.shape) for n, t in closed_over_tensors(generator).items()
            if t.dim() and t.shape[0] == x.shape[0]}
    if rows:
        names = ", ".join(f"{n} {s}" for n, s in rows.items())
        raise InvalidInputError(f"Expected: a generator of z alone, Got: a callable that closes over per-sample "
                                f"tensors ({names}), so it cannot run on other batches. Fix: pass them as "
                                "invert(G, x, cond=...), G taking (z, *cond)") from error
