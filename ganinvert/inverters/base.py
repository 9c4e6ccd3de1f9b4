"""What every inverter shares: its raw output and how statuses are assigned from it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..chain import Chain
from ..result import Status


@dataclass
class RawSolution:
    """An inverter's answer for the valid samples, float64, before statuses are assigned.

    Attributes:
        z: ``(B, k)`` flat latents.
        layer_residuals: ``(B, L)`` per-layer constraint violation (nan where not measured).
        unique: ``(B, L)`` bool, each layer's pre-image certified to be a point.
        methods: per sample, the solver path (e.g. ``"lstsq>ipm"``).
        messages: per sample, solver messages ("" when none).
        infeasible: ``(B,)`` bool, x provably outside the range of the last layer.
        failed: ``(B,)`` bool, a solver broke down.
        bound: ``(B,)`` certified bound on ``||z - z*||_2`` (nan where none), or None.
    """

    z: torch.Tensor
    layer_residuals: torch.Tensor
    unique: torch.Tensor
    methods: list[str]
    messages: list[str]
    infeasible: torch.Tensor
    failed: torch.Tensor
    bound: torch.Tensor | None = None


class Inverter:
    """Base class. A subclass sets ``name`` and implements :meth:`solve`; options are
    constructor keywords, validated there."""

    name = "inverter"

    def solve(self, chain: Chain, x: torch.Tensor, *, rtol: float) -> RawSolution:
        """Invert ``chain`` (float64, on x's device) at observations ``x`` (B, n) float64."""
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({opts})"


def assign_status(raw: RawSolution, residual: torch.Tensor, *, rtol: float) -> tuple[list[Status], list[str]]:
    """Statuses from the verified forward residual: never EXACT without ``G(z) = x`` *and* a
    single-point certificate for every layer."""
    statuses, messages = [], []
    unique_all = raw.unique.all(dim=1).tolist()
    for i, (res, msg) in enumerate(zip(residual.tolist(), raw.messages)):
        if raw.failed[i]:
            st = Status.FAILED
        elif res <= rtol:
            st = Status.EXACT if unique_all[i] else Status.EXACT_NONUNIQUE
            if st is Status.EXACT_NONUNIQUE and not msg:
                layers = [j for j, u in enumerate(raw.unique[i].tolist()) if not u]
                msg = f"pre-image of layer(s) {layers} is not certified to be a single point"
        elif raw.infeasible[i]:
            st = Status.INFEASIBLE
        else:
            st = Status.APPROXIMATE
            msg = msg or f"relative residual {res:.2e} > rtol {rtol:.1e}"
        statuses.append(st)
        messages.append(msg)
    return statuses, messages
