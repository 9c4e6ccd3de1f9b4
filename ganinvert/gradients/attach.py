"""``invert(differentiable=True)``: which answer map each sample gets, on the autograd graph."""

from __future__ import annotations

import torch

from ..chain import Chain
from ..errors import LayerTooLargeError
from ..tolerances import relative_residual
from .guard import Differentiated, guard
from .layers import LayerLP, differentiate
from .region import region_projection


def attach(chain: Chain, x_graph: torch.Tensor, x: torch.Tensor, z: torch.Tensor, *, observed: torch.Tensor | None,
           valid: torch.Tensor, invalid: list[str], rtol: float, lp_layer: LayerLP | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """``invert(differentiable=True)``: samples with ``G(z) = x`` (to ``rtol``) get the layers'
    active-set answer map (:func:`differentiate`), the others the projection onto their region
    (:func:`region_projection`). Samples take the value their gradient is of (the same ``z`` where
    ``G(z) = x``): ``z`` is updated in place, so the statuses describe the latents returned.

    Args:
        chain, x_graph: the chain and the observations ``(B, n)`` on the autograd graph.
        x: the observations, detached (unobserved pixels zeroed); z: ``(B, k)`` the latents found.
        observed: ``(B, n)`` bool or None; valid: ``(B,)`` bool on the CPU; invalid: per sample
            why it is INVALID ("" when valid).

    Returns:
        The guarded latents ``(B, k)`` on the graph, and the ``(B,)`` bool mask of those with a
        gradient.
    """
    xg = x_graph if observed is None else torch.where(observed, x_graph, torch.zeros_like(x_graph))
    with torch.no_grad():
        solved = (relative_residual(chain.detach().walk(z)[-1].out, x, observed=observed) <= rtol).cpu() & valid
    B = z.shape[0]
    out = Differentiated(z=z.detach().clone(), defined=torch.zeros(B, dtype=torch.bool), reasons=list(invalid))
    for rows, answer in ((solved, "layers"), (valid & ~solved, "region")):
        idx = rows.nonzero().flatten()
        if not idx.numel():
            continue
        r = idx.to(z.device)
        obs = None if observed is None else observed[r]
        try:
            part = (differentiate(chain, xg[r], z[r], observed=obs, lp_layer=lp_layer, rtol=rtol) if answer == "layers"
                    else region_projection(chain, xg[r], z[r], observed=obs))
        except LayerTooLargeError as e:  # a layer too large to write down has no active set to solve
            for i in idx.tolist():
                out.reasons[i] = f"no gradient: {e}"
            continue
        out.z = out.z.index_put((r,), part.z)
        out.defined[idx] = part.defined
        for j, i in enumerate(idx.tolist()):
            out.reasons[i] = part.reasons[j]
    keep = out.defined.nonzero().flatten().to(z.device)
    z[keep] = out.z.detach()[keep]
    return guard(out, z), out.defined
