"""``inspect(generator)``: per layer widths, expansion ratio and whether the exact layer-wise
method can invert it alone, before any inversion is run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from torch import nn

from .adapters import Conditioned, Converter, to_chain
from .blackbox import black_box
from .chain import Chain
from .conditions import as_conditions
from .errors import UnsupportedLayerError
from .linearize import piecewise_linear


@dataclass(frozen=True)
class LayerInfo:
    """Attributes: ``index``; ``operator`` (type name); ``in_dim``, ``out_dim``; ``expansion``
    (``out_dim / in_dim``); ``activation``; ``exact_alone`` (whether the layer's pre-image is
    expected to be a point); ``note`` (why)."""

    index: int
    operator: str
    in_dim: int
    out_dim: int
    expansion: float
    activation: str
    exact_alone: bool
    note: str


@dataclass(frozen=True)
class GeneratorReport:
    """What :func:`inspect` finds; ``str()`` gives a table. ``not_converted``: why the generator
    could not be converted to a chain (then it has no layers, and :func:`ganinvert.invert` runs
    only the searches that need gradients alone, never certified); "" when it was.
    ``local_radius``: the hidden activations are piecewise linear, so an answer that is not
    globally certified still gets a certified uniqueness radius (:mod:`ganinvert.radius`)."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    layers: tuple[LayerInfo, ...]
    not_converted: str = ""
    local_radius: bool = False

    @property
    def exact_alone(self) -> bool:
        """Every layer expands enough for the layer-wise method alone."""
        return not self.not_converted and all(layer.exact_alone for layer in self.layers)

    def __str__(self) -> str:
        if self.not_converted:
            return (f"latent {self.in_shape} -> image {self.out_shape}: not certifiable, "
                    f"{self.not_converted.rstrip('.')}. "
                    "invert() runs the searches that need gradients alone (method='adam' or 'gd'; the default "
                    "'auto' falls back to Adam restarts + L-BFGS); no answer is ever EXACT")
        lines = [f"latent {self.in_shape} -> image {self.out_shape}",
                 f"{'#':>2} {'operator':<16} {'in':>7} {'out':>7} {'ratio':>6} {'activation':<14} exact alone"]
        for r in self.layers:
            lines.append(f"{r.index:>2} {r.operator:<16} {r.in_dim:>7} {r.out_dim:>7} {r.expansion:6.2f} "
                         f"{r.activation:<14} {'yes' if r.exact_alone else 'no'}: {r.note}")
        lines.append("layer-wise method alone: " + ("expected exact" if self.exact_alone else
                     "not enough; use method='auto' (pattern LP, Adam polish) or 'hybrid'"))
        lines.append("certificates: EXACT means z is the only pre-image of x (every layer's pre-image a single point, "
                     "unique_radius inf); EXACT_NONUNIQUE answers carry unique_radius, " +
                     ("the distance from z within which no other latent gives G(z) (piecewise-linear hidden "
                      "activations)" if self.local_radius else
                      "0 here: a hidden activation is not piecewise linear, so there are no regions to prove it on"))
        return "\n".join(lines)


def inspect(generator: nn.Module | Chain, *, latent_shape: Sequence[int] | None = None,
            converters: Mapping[type, Converter] | None = None, cond=None) -> GeneratorReport:
    """Widths, expansion ratios and which layers the exact method can invert alone.

    The rule (docs/design.md §3.1; Lei et al. 2019; each activation's
    :attr:`~ganinvert.activations.Activation.min_expansion`): a ReLU layer's pre-image is a point
    with high probability when it at least doubles its width (about half its rows are positive);
    an invertible activation (LeakyReLU, Tanh, Sigmoid, none) needs ``out >= in``; a contracting
    layer never has a single-point pre-image. A rule of thumb for random-like weights, not a
    certificate: :func:`ganinvert.invert` certifies per sample. ``cond``: a conditional
    generator's condition (its first row is used), as :func:`ganinvert.invert` takes it.
    """
    if cond is not None:
        generator = Conditioned(generator, tuple(c.reshape(-1, *c.shape[1:])[:1] for c in as_conditions(cond)))
    try:
        chain = to_chain(generator, latent_shape=latent_shape, converters=converters)
    except UnsupportedLayerError as e:  # what invert() would run on: a black box
        box = black_box(generator, why=str(e), latent_shape=latent_shape)
        return GeneratorReport(box.in_shape, box.image_shape, (), not_converted=str(e))
    rows, k = [], chain.in_dim
    for i, layer in enumerate(chain.layers):
        n, act = layer.op.out_dim, layer.act
        need, name = act.min_expansion, type(act).__name__
        if n < k:
            ok, note = False, f"contracts {k} -> {n}: its pre-image is never a single point"
        elif n < need * k:
            ok, note = False, f"{name} expands only {n / k:.2f}x (< {need:g}x): many samples will not be pinned"
        else:
            ok, note = True, (f"{name} expands >= {need:g}x" if need > 1 else "invertible activation, out >= in")
        rows.append(LayerInfo(i, type(layer.op).__name__, k, n, n / k, repr(layer.act), ok, note))
        k = n
    return GeneratorReport(chain.in_shape, chain.out_shape, tuple(rows), local_radius=piecewise_linear(chain))
