"""What each floating dtype can resolve (the one table of tolerances by dtype), and the one
measure they apply to: the relative residual ``||G(z) - x|| / ||x||``.

An observation cannot be more exact than its own dtype, and a chain converted from a float32
module cannot reproduce it better than float32 does; both read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import torch


@dataclass(frozen=True)
class DtypeTolerance:
    """Attributes:
        residual: relative residual ``||G(z) - x|| / ||x||`` that counts as ``G(z) = x`` (the
            default ``rtol`` of :func:`ganinvert.invert` for observations of this dtype).
        chain_check: largest ``|chain(z) - module(z)|``, relative to ``max |module(z)| + 1``,
            accepted when a converted chain is checked against its module of this dtype.
    """

    residual: float
    chain_check: float


TOLERANCES = MappingProxyType({
    torch.float64: DtypeTolerance(residual=1e-6, chain_check=1e-9),
    torch.float32: DtypeTolerance(residual=1e-4, chain_check=1e-4),
})
#: half precision (float16, bfloat16) and anything else not in :data:`TOLERANCES`
LOW_PRECISION = DtypeTolerance(residual=1e-2, chain_check=1e-2)


def tolerance(dtype: torch.dtype) -> DtypeTolerance:
    """The tolerances of ``dtype``."""
    return TOLERANCES.get(dtype, LOW_PRECISION)


def target_scale(y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    """The scale a layer's tolerances are relative to, per sample of ``y`` ``(B, n)``: ``max |y|``,
    at least 1. The floor keeps a target that is all but zero from being its own yardstick: a
    hidden vector of 1e-8s recovered from a float32 image is zero to within the image's
    precision, not a set of positive rows that pin the layer's input (measured by the property
    tests: without the floor, a false EXACT)."""
    return y.abs().amax(1, keepdim=keepdim).clamp(min=1.0)


def relative_residual(x_hat: torch.Tensor, x: torch.Tensor, *, observed: torch.Tensor | None = None) -> torch.Tensor:
    """``||x_hat - x||_2 / ||x||_2`` per sample, for flat ``(B, n)`` images: the measure of
    ``G(z) = x`` everywhere in the toolkit (the inverters' searches, the statuses, the metrics).

    Args:
        x_hat: ``(B, n)`` the generator's output; x: ``(B, n)`` the observations.
        observed: ``(B, n)`` bool, the pixels that count (None: all); ``x`` must hold zeros
            off them, as :func:`ganinvert.invert` keeps it.

    Returns:
        ``(B,)`` in ``x``'s dtype; an all-zero ``x`` divides by the dtype's smallest normal.
    """
    diff = x_hat - x if observed is None else (x_hat - x) * observed
    return diff.norm(dim=1) / x.norm(dim=1).clamp(min=torch.finfo(x.dtype).tiny)
