"""The chain's linearisation: on the activation region of ``z`` a piecewise-linear generator is
affine in ``z`` (docs/design.md §3.3).

Fixing the on/off pattern of every hidden unit (:meth:`~ganinvert.chain.Chain.patterns`) fixes
each hidden activation's slope, so every pre-activation is ``p_l = J_l z + c_l`` on that region.
The activation-pattern LP (:mod:`ganinvert.lp.pattern`) writes the region and the output rows
with these pieces; Levenberg-Marquardt (:mod:`ganinvert.search.lm`) takes its steps with the
last layer's Jacobian; the region projection (:mod:`ganinvert.gradients.region`) fits on it.
"""

from __future__ import annotations

from typing import Iterator

import torch

from .chain import Chain, Layer


def piecewise_linear(chain: Chain) -> bool:
    """True when every hidden activation is piecewise linear (ReLU, LeakyReLU, identity: their
    :attr:`~ganinvert.activations.Activation.piecewise_linear`), so the chain has activation
    regions to linearise on; the output activation may be anything the layer-wise LP handles."""
    return all(layer.act.piecewise_linear for layer in chain.layers[:-1])


def affine_pieces(chain: Chain, patterns: list[torch.Tensor], batch: int, *, dtype: torch.dtype,
                  device: torch.device | str | None = None
                  ) -> Iterator[tuple[int, Layer, torch.Tensor, torch.Tensor]]:
    """With the hidden slopes fixed by ``patterns`` ``[(B, n_l) bool]``, every pre-activation is
    affine in ``z``: ``p_l = J_l z + c_l``. Yields ``(i, layer, J_l (B, n_l, k), c_l (B, n_l))``
    for each layer, first to last; ``J_l`` is built by pushing the ``k`` latent directions through
    the operators and ``c_l`` by pushing ``z = 0``."""
    B, k = batch, chain.in_dim
    c = torch.zeros(B, k, dtype=dtype, device=device)  # the image of z = 0
    # d(layer input)/dz with the k directions as rows, (B, k, dim): each operator maps them as a
    # batch, with no transpose copied in and out per layer (J_l is its transposed view)
    D = torch.eye(k, dtype=dtype, device=device).expand(B, k, k)
    for i, layer in enumerate(chain.layers):
        c = layer.op.matvec(c) + layer.bias
        D = layer.op.matvec(D.reshape(B * k, -1)).reshape(B, k, -1)
        yield i, layer, D.transpose(1, 2), c
        if i < len(chain) - 1 and layer.act.kinked:
            s = layer.act.branch_slope(patterns[i], like=c)
            c, D = s * c, s.unsqueeze(1) * D


def linearize(chain: Chain, z: torch.Tensor, *, jacobian_chain: Chain | None = None,
              dtype: torch.dtype | None = None, below_last: bool = False) -> tuple[torch.Tensor, ...]:
    """The last layer's pre-activation at ``z`` (B, k) and its Jacobian: ``(p (B, n), J (B, n, k))``,
    exact on the activation region of ``z`` (hidden activations piecewise linear, see
    :func:`piecewise_linear`). ``jacobian_chain``: the same chain in another dtype (float32) to
    build ``J`` in; ``p`` and the region always come from ``chain``. ``J`` is returned in ``dtype``
    (default: ``z``'s).

    ``below_last``: ``J`` is instead the Jacobian ``(B, m, k)`` of the last layer's input ``h``
    (so the last pre-activation's is ``A J`` for the last operator ``A``), returned with ``h``
    ``(B, m)``: ``(p, J, h)``. Where the last layer expands (``m`` much less than ``n``) it costs
    a fraction of the whole Jacobian, and its rows ``A_i J`` can be formed for the rows that
    matter (:func:`~ganinvert.search.lm.levenberg_marquardt`)."""
    steps = chain.walk(z)
    jc = jacobian_chain or chain
    pats = [step.pattern for step in steps[:-1]]
    if not below_last:
        *_, (_, _, J, _) = affine_pieces(jc, pats, z.shape[0], dtype=jc.dtype, device=z.device)
        return steps[-1].pre, J.to(dtype or z.dtype)
    if len(chain) == 1:
        k = chain.in_dim
        eye = torch.eye(k, dtype=dtype or z.dtype, device=z.device).expand(z.shape[0], k, k)
        return steps[-1].pre, eye, z.reshape(z.shape[0], -1)
    below = Chain(jc.layers[:-1], jc.in_shape)
    *_, (i, layer, J, c) = affine_pieces(below, pats[:-1], z.shape[0], dtype=jc.dtype, device=z.device)
    if layer.act.kinked:
        J = layer.act.branch_slope(pats[-1], like=c).unsqueeze(-1) * J
    return steps[-1].pre, J.to(dtype or z.dtype), steps[-2].out
