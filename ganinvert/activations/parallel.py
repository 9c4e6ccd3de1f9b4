"""Several activations side by side in one layer: how a graph that is not a chain becomes one.

A residual block ``f(x) + shortcut(x)`` needs ``x`` after ``f``'s first activation. The chain
carries it: the layer that applies ``f``'s activation outputs ``[phi(p_f); p_x]``, the second
part under the identity (:mod:`ganinvert.lifting`). Each method here splits the units into the
parts and asks each part's activation, so every LP, search and derivative takes such a layer as
it takes any other.
"""

from __future__ import annotations

import torch

from .base import Activation, RowBounds


def _cat(bounds: list[RowBounds]) -> RowBounds:
    return RowBounds(lo=torch.cat([b.lo for b in bounds], 1), hi=torch.cat([b.hi for b in bounds], 1),
                     weight=torch.cat([b.weight for b in bounds], 1))


class Parallel(Activation):
    """Activation ``parts[i][0]`` on the next ``parts[i][1]`` units, in order.

    Attributes:
        parts: ``((activation, units), ...)``.
    """

    name = "parallel"

    def __init__(self, parts) -> None:
        merged: list[tuple[Activation, int]] = []
        for act, n in parts:  # neighbours with the same activation become one part
            if merged and merged[-1][0] == act:
                merged[-1] = (act, merged[-1][1] + n)
            else:
                merged.append((act, int(n)))
        self.parts = tuple(merged)
        acts = [a for a, _ in self.parts]
        self.range = (min(a.range[0] for a in acts), max(a.range[1] for a in acts))
        self.piecewise_linear = all(a.piecewise_linear for a in acts)
        self.kinked = any(a.kinked for a in acts)
        self.relu_like = all(a.relu_like for a in acts)
        self.noisy_rows = all(a.noisy_rows for a in acts)
        self.min_expansion = max(a.min_expansion for a in acts)

    def _split(self, *tensors: torch.Tensor):
        """``(activation, *the tensors' columns of its units)`` per part."""
        at = 0
        for act, n in self.parts:
            yield (act, *(t[:, at:at + n] for t in tensors))
            at += n

    def forward(self, p):
        return torch.cat([act.forward(q) for act, q in self._split(p)], 1)

    def bounds(self, y, *, tol):
        return _cat([act.bounds(v, tol=tol) for act, v in self._split(y)])

    def search_bounds(self, y):
        return _cat([act.search_bounds(v) for act, v in self._split(y)])

    def inverse(self, y, p):
        return torch.cat([act.inverse(v, q) for act, v, q in self._split(y, p)], 1)

    def threshold_bounds(self, y, tau):
        return _cat([act.threshold_bounds(v, tau) for act, v in self._split(y)])

    def relax_rows(self, y, tau):
        rows = [act.relax_rows(v, tau) for act, v in self._split(y)]
        return _cat([r for r, _ in rows]), torch.cat([g for _, g in rows], 1)

    def branch_slope(self, on, *, like):
        return torch.cat([act.branch_slope(o, like=v) for act, o, v in self._split(on, like)], 1)

    def region_bounds(self, on, *, like):
        rows = [act.region_bounds(o, like=v) for act, o, v in self._split(on, like)]
        return torch.cat([lo for lo, _ in rows], 1), torch.cat([hi for _, hi in rows], 1)

    def out_of_range(self, y, *, tol):
        return torch.stack([act.out_of_range(v, tol=tol) for act, v in self._split(y)]).any(0)

    def __repr__(self) -> str:
        return "Parallel(" + ", ".join(f"{a!r} x{n}" for a, n in self.parts) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Parallel) and self.parts == other.parts

    def __hash__(self) -> int:
        return hash(self.parts)
