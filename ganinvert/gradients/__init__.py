"""Gradients through the inversion: implicit differentiation of each answer's active set.

The modules: :mod:`.layers` (the layers' active-set answer map, for samples with ``G(z) = x``),
:mod:`.region` (the projection onto an activation region, for the others), :mod:`.guard` (the
refusal where there is no gradient) and :mod:`.attach` (which sample gets which, for
``invert(differentiable=True)``).

**Samples with G(z) = x.** At the latent ``z`` found, every layer ``y = phi(A u + b)`` has an
active set: the rows its activation pins (``phi`` invertible there: positive ReLU rows, every
LeakyReLU row, unsaturated Tanh/Sigmoid rows; :meth:`~ganinvert.activations.Activation.active_rows`)
and the input coordinates sitting on the previous activation's range bound (ReLU zeros). Where
those equations have full column rank on the free coordinates, they pin the layer's input, and
the answer map of the layer-wise method near ``z`` is their weighted least-squares solution::

    u(y) = argmin { sum_{j pinned} w_j^2 (a_j u + b_j - phi^-1(y_j))^2 : u_F = bound }

chained from the last layer to the first (:func:`~.layers.differentiate`). On an EXACT sample it is the
certified answer (``u(x) = z``), and its derivative the exact derivative of the answer map: along
the range of ``G`` the only possible one; off the range the least-squares one, which is also the
layer LP's own derivative (the minimum-norm solution of its singular KKT derivative;
``Layerwise(solver="cvxpylayers")`` is that reference, see :mod:`ganinvert.lp.cvx`). The backward pass of one
layer costs two triangular solves and four GEMMs (:class:`~.layers.LeastSquares`).

**Samples without G(z) = x** (noisy or perturbed observations, Defense-GAN style projections):
on the activation region of ``z`` the generator is affine, so the least-squares projection of
``x`` onto the image of the region's closure is a convex QP (:func:`~.region.region_projection`): it is
solved by an active-set method from ``z`` and differentiated through its active set (the hidden
units held at 0 and the pinned output rows). It fits ``x`` at least as well as ``z``, equals ``z``
where ``z`` already minimises the misfit in its region, and stays continuous when the projection
sits on a boundary between regions (both closures hold it), where the plain projection has no
derivative: the QP's active set gives the one-sided derivative along that face.

A sample whose active set does not pin ``z`` (a contracting layer, a rank-deficient region) has
no gradient: :func:`~.guard.guard` refuses to backpropagate into it (:class:`NotDifferentiableError`).
"""

from .attach import attach
from .guard import Differentiated, guard
from .layers import LayerLP, differentiate
from .region import region_projection

__all__ = ["Differentiated", "LayerLP", "attach", "differentiate", "guard", "region_projection"]
