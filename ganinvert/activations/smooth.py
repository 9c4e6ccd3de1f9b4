"""The smooth activations: bijective onto their range (Tanh, Sigmoid, ELU, Softplus), inverted
exactly elementwise inside it, with one-sided bounds where the output is saturated."""

from __future__ import annotations

import math

import torch

from .base import _INF, _MIN_WEIGHT, Activation, RowBounds


def _from_float32(y: torch.Tensor) -> torch.Tensor:
    """``(B, 1)`` bool: the float64 sample's values are all float32 numbers, and some of them not
    float16 ones (round values such as 0 and 1 say nothing of where they came from): it came from
    float32, as a float64 computation almost never lands on float32 numbers everywhere."""
    if y.dtype != torch.float64:
        return torch.zeros(y.shape[0], 1, dtype=torch.bool, device=y.device)
    half = y.half().double()
    return ((y == y.float().double()).all(1, keepdim=True)
            & ((y != half) & (y.abs() <= torch.finfo(torch.float16).max)).any(1, keepdim=True))


class _Saturating(Activation):
    """Bijective onto the range: inverted exactly inside it, one-sided bounds where saturated."""

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _slope(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        lo_r, hi_r = self.range
        sat = math.sqrt(torch.finfo(y.dtype).eps)  # saturated rows are never pinned (bounds)
        return self._inverse(y.clamp(lo_r + sat, hi_r - sat))

    def bounds(self, y: torch.Tensor, *, tol: torch.Tensor) -> RowBounds:
        # Near the ends the inverse is ill-conditioned (d phi^-1/dy ~ 1/(1-y)); within
        # sqrt(eps) of an end the value only says "saturated", a one-sided bound.
        return self._rows(y, single=torch.zeros(y.shape[0], 1, dtype=torch.bool, device=y.device))

    def search_bounds(self, y: torch.Tensor) -> RowBounds:
        """At the precision ``y`` carries, every row weighing 1 (docs/design.md §3.7). A sample of
        float32 numbers (:func:`_from_float32`) is saturated within ``sqrt(eps_32)`` of a non-zero
        end: float32 resolves ``1 - |y|`` only to 6e-8, so its ``atanh`` 1e-7 from an end is off by
        0.3, and as an equation such a row pulls LM away from ``z*`` (8 float32 observations each
        of ``dcgan_odd``, ``dcgan`` and ``mlp_gan`` x3, rtol 1e-4: 0, 8 and 0 of 8 solved with
        float64's band, 8 of 8 each with this). Near a zero end float32 keeps its relative
        precision, and the band stays float64's."""
        return self._rows(y, single=_from_float32(y)).unweighted()

    def _rows(self, y: torch.Tensor, *, single: torch.Tensor) -> RowBounds:
        lo_r, hi_r = self.range
        band = torch.full((y.shape[0], 1), math.sqrt(torch.finfo(y.dtype).eps), dtype=y.dtype, device=y.device)
        wide = math.sqrt(torch.finfo(torch.float32).eps)
        lo_b, hi_b = (torch.where(single & (end != 0) & math.isfinite(end), wide * abs(end), band)
                      for end in (lo_r, hi_r))
        high, low = y >= hi_r - hi_b, y <= lo_r + lo_b
        inner = ~(high | low)
        p = self._inverse(torch.minimum(torch.maximum(y, lo_r + lo_b), hi_r - hi_b))
        p_hi, p_lo = self._inverse(hi_r - hi_b).expand_as(y), self._inverse(lo_r + lo_b).expand_as(y)
        ninf, pinf = torch.full_like(y, -_INF), torch.full_like(y, _INF)
        lo = torch.where(inner, p, torch.where(high, p_hi, ninf))
        hi = torch.where(inner, p, torch.where(low, p_lo, pinf))
        # Output-space weights phi'(p), floored at 1e-2: near-saturated pixels (an MNIST
        # background at -0.9999) would otherwise get weights ~1e-8 and ruin the conditioning
        # of the pinned rows; their inverse is still accurate to eps / sat, far below tolerance.
        w = torch.where(inner, (self._slope(y) / self._slope_max).clamp(min=_MIN_WEIGHT), torch.ones_like(y))
        return RowBounds(lo=lo, hi=hi, weight=w)


class Tanh(_Saturating):
    name = "tanh"
    range = (-1.0, 1.0)
    _slope_max = 1.0

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.tanh(p)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.atanh(y)

    def _slope(self, y: torch.Tensor) -> torch.Tensor:
        return 1 - y * y

    def range_hint(self) -> str:
        return "values in [-1, 1] (for 8-bit images use x / 127.5 - 1)"


class Sigmoid(_Saturating):
    name = "sigmoid"
    range = (0.0, 1.0)
    _slope_max = 0.25

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(p)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.logit(y)

    def _slope(self, y: torch.Tensor) -> torch.Tensor:
        return y * (1 - y)

    def range_hint(self) -> str:
        return "values in [0, 1] (for 8-bit images use x / 255)"


class ELU(_Saturating):
    """``p`` above 0, ``alpha (exp(p) - 1)`` below: bijective onto ``(-alpha, inf)``."""

    name = "elu"
    _slope_max = 1.0

    def __init__(self, alpha: float = 1.0) -> None:
        if not alpha > 0:
            raise ValueError(f"ELU alpha must be > 0 to be invertible, got {alpha:g}")
        self.alpha = float(alpha)
        self.range = (-self.alpha, _INF)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.elu(p, self.alpha)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.where(y > 0, y, torch.log1p(y.clamp(max=0) / self.alpha))

    def _slope(self, y: torch.Tensor) -> torch.Tensor:
        return torch.where(y > 0, torch.ones_like(y), y + self.alpha)

    def __repr__(self) -> str:
        return f"ELU({self.alpha:g})"


class Softplus(_Saturating):
    """``log(1 + exp(beta p)) / beta``, and ``p`` itself where ``beta p > threshold`` (as torch computes
    it): bijective onto ``(0, inf)``."""

    name = "softplus"
    range = (0.0, _INF)
    _slope_max = 1.0

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        if not beta > 0:
            raise ValueError(f"Softplus beta must be > 0, got {beta:g}")
        self.beta, self.threshold = float(beta), float(threshold)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.softplus(p, self.beta, self.threshold)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        t = self.beta * y
        # log(expm1(t)), written as t + log1p(-exp(-t)) where expm1 would overflow
        inv = torch.where(t > 1, t + torch.log1p(-torch.exp(-t)), torch.log(torch.expm1(t.clamp(max=1))))
        return torch.where(t > self.threshold, y, inv / self.beta)

    def _slope(self, y: torch.Tensor) -> torch.Tensor:
        return -torch.expm1(-self.beta * y)  # sigmoid(beta p) in terms of y

    def __repr__(self) -> str:
        return f"Softplus(beta={self.beta:g}, threshold={self.threshold:g})"
