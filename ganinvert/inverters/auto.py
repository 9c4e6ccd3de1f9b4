"""``method="auto"``: every exact tool in turn, stopping per sample at the first answer with
``G(z) = x`` (DESIGN.md 3):

1. the layer-wise pass (certified least squares, then the layer LP);
2. for the samples it leaves without ``G(z) = x``, the activation-pattern LP over all layers,
   seeded by the layer-wise estimate (or, where a layer failed outright, by Adam);
3. for those still open, Adam started from the best point so far, then the pattern LP again
   from Adam's point ("Adam polish").

An answer found by stages 2-3 is certified the same way as a layer-wise one: walking down the
generator from ``G(z)``, every layer's pre-image of its true output must be a single point,
and then ``z = z*``; otherwise the status is EXACT_NONUNIQUE (``G(z) = x``, ``z`` maybe not
``z*``). Generators with non-piecewise-linear hidden activations skip the pattern LP.
"""

from __future__ import annotations

import logging

import torch

from ..chain import Chain
from ..errors import LayerTooLargeError
from ..lp import invert_layer
from ..lp.pattern import applies, solve_pattern_lp
from .adam import Adam
from .base import Inverter, RawSolution
from .layerwise import Layerwise

logger = logging.getLogger(__name__)


def certify_along(chain: Chain, z: torch.Tensor, *, rtol: float, layerwise: Layerwise) -> torch.Tensor:
    """``(B, L)`` bool: layer ``i``'s pre-image of its output at ``z`` is the single point it was
    given. All True proves that ``z`` is the only latent with this ``G(z)``."""
    B, L = z.shape[0], len(chain)
    unique = torch.zeros(B, L, dtype=torch.bool)
    with torch.no_grad():
        outs = chain.forward_all(z)
    for i, layer in enumerate(chain.layers):
        try:
            A = layer.op.dense(max_entries=layerwise.max_dense_entries)
        except LayerTooLargeError:
            continue  # stays uncertified
        if A.shape[1] > layerwise.max_lp_dim and A.shape[0] < A.shape[1]:
            continue  # a contracting layer never has a single-point pre-image
        sol = invert_layer(A, layer.bias, layer.act, outs[i], u_range=chain.input_range(i),
                           rtol=layerwise.layer_rtol * rtol, solver=layerwise.solver,
                           rank_rtol=layerwise.rank_rtol, max_lp_dim=layerwise.max_lp_dim)
        unique[:, i] = (sol.unique & sol.solver_ok).cpu()
    return unique


class Auto(Inverter):
    """Layer-wise LP, then the activation-pattern LP, then Adam polish (see the module doc).

    Args:
        layerwise: the first stage and the certifier (default ``Layerwise()``).
        adam: the polish stage (default ``Adam(steps=300, lr=0.05, restarts=8)``: the first
            restart starts at the best point so far, the others at random).
        pattern_rounds: pattern LPs per seed (each re-reads the pattern at the last optimum).
        polish_rounds: rounds of Adam from the best point, then the pattern LP from Adam's.
    """

    name = "auto"

    def __init__(self, *, layerwise: Layerwise | None = None, adam: Adam | None = None,
                 pattern_rounds: int = 5, polish_rounds: int = 3) -> None:
        self.layerwise = layerwise or Layerwise()
        self.adam = adam or Adam(steps=300, lr=0.05, restarts=8)
        self.pattern_rounds, self.polish_rounds = int(pattern_rounds), int(polish_rounds)

    def solve(self, chain: Chain, x: torch.Tensor, *, rtol: float) -> RawSolution:
        raw = self.layerwise.solve(chain, x, rtol=rtol)
        res = chain.relative_residual(raw.z, x).cpu()
        todo = (res > rtol).nonzero().flatten()
        if todo.numel() == 0:
            return raw
        pl = applies(chain)
        z, tag = raw.z[todo.to(x.device)].clone(), ["" for _ in range(todo.numel())]
        failed = raw.failed[todo]
        if failed.any():  # no layer-wise estimate to start from: Adam's point is the seed
            f = failed.nonzero().flatten().to(x.device)
            z[f] = self.adam.solve(chain, x[todo.to(x.device)][f], rtol=rtol).z
            for j in failed.nonzero().flatten().tolist():
                tag[j] = "adam"
        xt = x[todo.to(x.device)]
        best = chain.relative_residual(z, xt).cpu()
        polish = ["adam", "pattern"] if pl else ["adam"]
        for stage in (["pattern"] if pl else []) + polish * self.polish_rounds:
            open_ = (best > rtol).nonzero().flatten()
            if open_.numel() == 0:
                break
            o = open_.to(x.device)
            if stage == "pattern":
                cand = solve_pattern_lp(chain, z[o], xt[o], rtol=rtol, rounds=self.pattern_rounds).z
            else:
                cand = self.adam.solve(chain, xt[o], rtol=rtol, z0=z[o]).z
            r = chain.relative_residual(cand, xt[o]).cpu()
            better = r < best[open_]
            for j, i in enumerate(open_.tolist()):
                if better[j]:
                    z[i], best[i] = cand[j], r[j]
                    tag[i] = f"{tag[i]}>{stage}" if tag[i] else stage
            logger.info("auto: after %s, %d of %d open samples have G(z) = x", stage,
                        int((best[open_] <= rtol).sum()), open_.numel())
        won = (best <= rtol) | (best < res[todo])
        solved = (best <= rtol).nonzero().flatten()
        uniq = (certify_along(chain, z[solved.to(x.device)], rtol=rtol, layerwise=self.layerwise)
                if solved.numel() else None)
        for j, i in enumerate(todo.tolist()):
            if not won[j]:
                continue
            raw.z[i] = z[j]
            raw.methods[i] = f"{raw.methods[i]}>{tag[j]}" if tag[j] else raw.methods[i]
            raw.failed[i] = raw.infeasible[i] = False
            raw.unique[i] = False
            raw.messages[i] = f"{tag[j] or 'layerwise'} answer ({raw.messages[i] or 'layer-wise pass not exact'})"
        if uniq is not None:
            for j, s in enumerate(solved.tolist()):
                raw.unique[todo[s]] = uniq[j]
        return raw
