"""Elementwise activations of the chain and how each one is undone.

For a layer ``y = phi(p)``, ``p = A u + b``, an activation turns an observed ``y`` into
per-row bounds ``lo <= p <= hi`` on the pre-activation (``lo == hi`` where ``p`` is
determined, a one-sided bound where ``phi`` is flat: ReLU zeros, saturated Tanh/Sigmoid), plus
per-row weights ``phi'(p)`` so that solvers measure misfit in output units to first order
(Levenberg-Marquardt's rows, :meth:`Activation.search_bounds`, weigh 1 on a saturating output).
Every tensor here is flat ``(B, n)``.

Everything that differs per activation lives on its class, so adding one touches this package
only: the exact layer rows (:meth:`Activation.bounds`), the noisy rows of the thresholded l_inf
LP (:meth:`Activation.threshold_bounds`) and of the l_1 relax LP
(:meth:`Activation.relax_rows`), the branch slopes of the activation-pattern LP
(:attr:`Activation.piecewise_linear`, :meth:`Activation.branch_slope`,
:meth:`Activation.region_bounds`), which observations
identify nothing (:meth:`Activation.uninformative`) and how much a layer must expand to pin its
input (:attr:`Activation.min_expansion`).
"""

from .base import Activation, Identity, RowBounds
from .parallel import Parallel
from .piecewise import Hardtanh, LeakyReLU, ReLU
from .smooth import ELU, Sigmoid, Softplus, Tanh

__all__ = ["Activation", "ELU", "Hardtanh", "Identity", "LeakyReLU", "Parallel", "ReLU", "RowBounds", "Sigmoid",
           "Softplus", "Tanh"]
