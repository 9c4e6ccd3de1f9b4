"""The one backward pass over a chain's layers, last layer first (Lei et al. 2019).

Every layer-by-layer inverter walks the same way: layer ``i`` receives the targets of the
samples still live, inverts ``act(A u + b) = y`` by its own rule, and its inputs become the
targets of layer ``i - 1``, down to the latent. What differs (the exact LP with its certificate,
the noisy threshold schedules, the uniqueness check along a known ``G(z)``) is the *step* the
inverter passes in; the walk, the dense operators, which samples go on and the progress log are
here, once. This is where a time limit, progress reporting and gradients hook in. It lives beside
the chain it walks: inverters, the uniqueness check along a known ``G(z)`` and the derivative of
the answer (:mod:`ganinvert.gradients`) all walk with it.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import torch

from .budget import Budget
from .chain import Chain
from .operators import DEFAULT_MAX_DENSE

logger = logging.getLogger(__name__)


class LayerStep(Protocol):
    """One layer of a backward pass.

    Called with the layer's index ``i``, its dense operator ``A`` (n, k), the targets ``y``
    (b, n) of the live samples and their indices ``rows`` (b,) in the batch. Returns ``(u, keep)``:
    the layer inputs found, ``(b, k)``, and which of those samples go on to the layer below
    (``(b,)`` bool; a sample whose step failed has no meaningful target there).
    """

    def __call__(self, i: int, A: torch.Tensor, y: torch.Tensor,
                 rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class BackwardPass:
    """Walks ``chain`` backwards with a :class:`LayerStep`.

    Args:
        chain: the generator (float64, on the device of the observations).
        max_dense_entries: largest dense layer matrix to materialise (see
            :meth:`~ganinvert.operators.LinearOperator.dense`).
    """

    def __init__(self, chain: Chain, *, max_dense_entries: int = DEFAULT_MAX_DENSE) -> None:
        self.chain, self.max_dense_entries = chain, int(max_dense_entries)
        self._dense: dict[int, torch.Tensor] = {}
        #: whether the last :meth:`run` reached the latent (False: the budget or the steps stopped it)
        self.complete = False

    def dense(self, i: int) -> torch.Tensor:
        """Layer ``i``'s operator as a dense ``(n, k)`` matrix, for a step that needs it before the
        pass (the noise estimate reads the last layer's): :meth:`run` reuses it, then lets it go.

        Args:
            i: the layer's index in the chain.

        Returns:
            ``(out_dim, in_dim)`` matrix in the chain's dtype and device.

        Raises:
            LayerTooLargeError: the matrix would exceed ``max_dense_entries``.
        """
        if i not in self._dense:
            self._dense[i] = self.chain.layers[i].op.dense(max_entries=self.max_dense_entries)
        return self._dense[i]

    def run(self, x: torch.Tensor, step: LayerStep, *,
            targets: list[torch.Tensor] | None = None, budget: Budget | None = None) -> torch.Tensor:
        """Invert every layer from the last to the first.

        Args:
            x: ``(B, n)`` the observations, the last layer's targets.
            step: the per-layer rule.
            targets: ``[(B, n_i)]`` per layer, when each layer's target is known beforehand (the
                outputs along a known ``G(z)``) instead of coming from the layer above.
            budget: checked before each layer; once expired the pass stops there.

        Returns:
            ``(B, k)`` the latents; zero for samples that stopped before the first layer (all of
            them when the budget stopped the pass, and then :attr:`complete` is False).
        """
        B = x.shape[0]
        y, alive = x, torch.arange(B, device=x.device)  # samples no step has stopped yet
        self.complete = False
        for i in reversed(range(len(self.chain))):
            if budget is not None:
                budget.stage(f"backward pass, layer {i}")
            if alive.numel() == 0 or (budget is not None and budget.expired):  # nothing reaches the latent
                self._dense.clear()
                return torch.zeros(B, self.chain.in_dim, dtype=x.dtype, device=x.device)
            t0 = time.perf_counter()
            A = self.dense(i)
            del self._dense[i]  # one layer's matrix at a time: conv layers' can take GiBs each
            target = y[alive] if targets is None else targets[i][alive]
            u, keep = step(i, A, target, alive)
            y = torch.zeros(B, A.shape[1], dtype=x.dtype, device=x.device)
            y[alive] = u
            logger.info("backward pass: layer %d (%d -> %d) for %d samples in %.3f s, %d go on", i, A.shape[1],
                        A.shape[0], alive.numel(), time.perf_counter() - t0, int(keep.sum()))
            alive = alive[keep.to(alive.device)]
        self.complete = True
        return y
