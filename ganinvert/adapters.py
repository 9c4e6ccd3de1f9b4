"""Torch module -> :class:`~ganinvert.chain.Chain`.

The module is traced with ``torch.fx`` and the graph is run once on example latents, so every
reshape (``x.view(-1, C, H, W)``, ``Flatten``, ``Unflatten``...) is read off the real tensor
shapes. Each leaf module is turned into pieces by a converter looked up by type
(:mod:`ganinvert.converters`), each function by :mod:`ganinvert.functional`; the graph, chain or
not, becomes layers in :mod:`ganinvert.lifting`.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
from typing import Callable, Mapping, Sequence

import torch
from torch import fx, nn

from .chain import Chain
from .converters import DEFAULT_CONVERTERS, Converter
from .errors import ChainMismatchError, InvalidInputError, ShapeMismatchError, TrainingModeError, UnsupportedLayerError
from .lifting import lift
from .tolerances import tolerance

logger = logging.getLogger(__name__)


_MODE_DEPENDENT = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
_PROBE_BATCH = 3


class _Tracer(fx.Tracer):
    """Keeps every module that has a converter as a leaf (user types included)."""

    def __init__(self, converters: Mapping[type, Converter]) -> None:
        super().__init__()
        self._leaf_types = tuple(converters)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # a subclass that rewrites forward (an equalized-lr Conv2d scaling its input) is traced
        # through: its converter would read the weights and miss what the new forward does
        if any(isinstance(m, t) and type(m).forward is t.forward for t in self._leaf_types):
            return True
        return not isinstance(m, self._leaf_types) and super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        try:
            self.path_of_module(m)
        except NameError:  # a module built inside forward (``PixelNorm()(x)``): traced through, as code
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)


class CallableGenerator(nn.Module):
    """A generator given as a callable ``z -> x`` (a bound method such as ``vae.decode``, a
    function, a ``functools.partial``): a module whose ``forward`` calls it, holding as submodules
    the modules it reaches (the bound method's owner, the partial's arguments, the function's
    globals and closure), so torch.fx traces their layers like any module's."""

    def __init__(self, fn: Callable) -> None:
        super().__init__()
        self.fn, self.name = fn, getattr(fn, "__qualname__", None) or repr(fn)
        for i, m in enumerate(_modules_reached(fn)):
            self.add_module(f"reached{i}", m)

    def forward(self, z):
        return self.fn(z)


def _modules_reached(fn) -> list[nn.Module]:
    """The modules a callable uses, each once: its owner, partial arguments, globals, closure."""
    found: list[nn.Module] = []
    seen: set[int] = set()

    def add(obj) -> None:
        if isinstance(obj, nn.Module) and id(obj) not in seen:
            seen.add(id(obj))
            found.append(obj)

    add(getattr(fn, "__self__", None))
    if isinstance(fn, functools.partial):
        for obj in (*fn.args, *fn.keywords.values(), *_modules_reached(fn.func)):
            add(obj)
    code = getattr(fn, "__code__", None)
    if code is not None:
        for name in code.co_names:
            add(getattr(fn, "__globals__", {}).get(name))
        for cell in getattr(fn, "__closure__", None) or ():
            add(cell.cell_contents)
    return found


def closed_over_tensors(fn: Callable) -> dict[str, torch.Tensor]:
    """The tensors a callable reads from outside (closure cells, globals it names, a partial's
    arguments), by name: a per-sample tensor among them belongs in ``cond=``."""
    found: dict[str, torch.Tensor] = {}
    if isinstance(fn, functools.partial):
        found.update({f"argument {i}": a for i, a in enumerate(fn.args) if isinstance(a, torch.Tensor)})
        found.update({k: v for k, v in fn.keywords.items() if isinstance(v, torch.Tensor)})
        fn = fn.func
    code = getattr(fn, "__code__", None)
    if code is not None:
        cells = zip(code.co_freevars, getattr(fn, "__closure__", None) or ())
        found.update({name: c.cell_contents for name, c in cells if isinstance(c.cell_contents, torch.Tensor)})
        glob = getattr(fn, "__globals__", {})
        found.update({n: glob[n] for n in code.co_names if isinstance(glob.get(n), torch.Tensor)})
    return found


def _name(module: nn.Module) -> str:
    name = getattr(module, "name", None)  # a callable's or a conditioned generator's
    return name if isinstance(name, str) else type(module).__name__


def check_eval_mode(module: nn.Module) -> None:
    """A module whose output depends on the batch (BatchNorm, Dropout in training mode) is refused."""
    for path, sub in module.named_modules():
        if isinstance(sub, _MODE_DEPENDENT) and sub.training:
            raise TrainingModeError(
                f"module '{path or '<root>'}' ({type(sub).__name__}) is in training mode, so its "
                "output depends on the batch. Hint: call generator.eval() before inverting.")


def _candidate_latent_shapes(gm: fx.GraphModule, module: nn.Module) -> list[tuple]:
    # the layers in call order; then in definition order (a layer traced through, not called)
    called = [gm.get_submodule(node.target) for node in gm.graph.nodes if node.op == "call_module"]
    return latent_shape_candidates([module, *called, *module.modules()])


def latent_shape_candidates(modules) -> list[tuple]:
    """The latent shapes the first layer among ``modules`` (in call order) can take: ``(k,)``
    before a Linear, ``(C, 1, 1)`` or ``(C,)`` before a convolution; none when neither comes. A
    conditional generator's first layer takes its condition too (a label's embedding, a one-hot
    vector): for each width that condition may have (an ``nn.Embedding``'s dimension, a
    :class:`Conditioned` generator's condition size), the shape that many features or channels
    smaller is a candidate as well."""
    modules = list(modules)
    widths = [w for m in modules
              for w in ([m.embedding_dim] if isinstance(m, nn.Embedding) else getattr(m, "cond_widths", ()))]
    for sub in modules:
        k = sub.in_features if isinstance(sub, nn.Linear) else (
            sub.in_channels if isinstance(sub, (nn.ConvTranspose2d, nn.Conv2d)) else None)
        if k is not None:
            sizes = dict.fromkeys([k] + [k - w for w in widths if 0 < w < k])
            return [s for n in sizes for s in ([(n,)] if isinstance(sub, nn.Linear) else [(n, 1, 1), (n,)])]
    return []


class Conditioned(nn.Module):
    """``z -> generator(z, *cond)`` for one condition shared by the batch: a generator of ``z`` alone,
    whose values computed from the condition are constants of its chain (:mod:`ganinvert.lifting`).

    Args:
        generator: the conditional generator (a module or a callable ``(z, *cond) -> x``).
        cond: the condition, one row per tensor (``(1, ...)``), expanded to the batch of ``z``.
    """

    def __init__(self, generator: Callable, cond: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        self.generator = generator if isinstance(generator, nn.Module) else CallableGenerator(generator)
        self.n_cond = len(cond)
        for i, c in enumerate(cond):
            self.register_buffer(f"cond{i}", c.detach().clone())
        self.cond_widths = tuple(math.prod(c.shape[1:]) for c in cond)
        self.name = f"{_name(self.generator)} given cond"

    def forward(self, z):
        cond = [getattr(self, f"cond{i}") for i in range(self.n_cond)]
        g = self.generator.fn if isinstance(self.generator, CallableGenerator) else self.generator
        return g(z, *(c.expand(z.shape[0], *c.shape[1:]) for c in cond))


def checked_latent_shape(shape: object) -> tuple[int, ...]:
    """``latent_shape`` as a tuple of positive ints, or a typed error saying what was expected."""
    try:
        dims = tuple(operator.index(d) for d in shape) if not isinstance(shape, (str, bytes)) else ()
    except TypeError:  # not a sequence, or an entry that is not an integer (bools count as one: refused below)
        dims = ()
    if not dims or any(d <= 0 or isinstance(d, bool) for d in shape):
        raise InvalidInputError(f"Expected: latent_shape as a tuple of positive ints (the per-sample shape of z, "
                                f"e.g. (100,) or (100, 1, 1)), Got: {shape!r}")
    return dims


def probe(gm: Callable, z: torch.Tensor) -> Exception | None:
    """None when the module runs on ``z``, else the error that rules this latent shape out."""
    try:
        with torch.no_grad():
            gm(z)
        return None
    except Exception as e:  # noqa: BLE001 - any failure just rules this shape out
        return e


def to_chain(module: nn.Module | Chain, *, latent_shape: Sequence[int] | None = None,
             converters: Mapping[type, Converter] | None = None, check: bool = True,
             seed: int = 0, differentiable: bool = False) -> Chain:
    """Turn a torch generator into a float64 :class:`Chain`.

    Args:
        module: an ``nn.Module`` (``nn.Sequential`` trees, or a class whose ``forward`` is plain
            layer calls, functional activations and reshapes); any callable ``z -> x`` (a bound
            method such as ``vae.decode``, a function, a ``functools.partial``), traced with the
            modules it reaches; or a ``Chain`` (returned as is).
        latent_shape: per-sample latent shape; inferred from the first layer when omitted
            (``(k,)`` before a Linear, ``(C, 1, 1)`` or ``(C,)`` before a convolution).
        converters: extra ``{ModuleType: converter}`` entries; they take precedence over the
            built-in ones for the same type.
        check: compare ``chain(z)`` with ``module(z)`` on random latents.
        seed: seed of those latents.
        differentiable: keep the chain's weights attached to the module's parameters, so that
            gradients computed from the chain reach them (``invert(differentiable=True)``); by
            default the chain is detached.

    Returns:
        The chain, float64, on the module's device.

    Raises:
        TrainingModeError, UnsupportedLayerError, ChainMismatchError, ShapeMismatchError.
    """
    if isinstance(module, Chain):
        return module
    if not isinstance(module, nn.Module):
        if not callable(module):
            raise UnsupportedLayerError(f"Expected: a torch.nn.Module, a callable z -> x (e.g. vae.decode) or a "
                                        f"ganinvert.Chain, Got: {type(module).__name__}")
        module = CallableGenerator(module)
        if not len(module._modules):
            raise UnsupportedLayerError(
                f"Expected: a callable z -> x that runs torch modules (a bound method, or a function or partial "
                f"whose arguments, globals or closure hold them), Got: {module.name}, which reaches none. Fix: pass "
                "the generator module itself, or a method of it such as vae.decode")
    check_eval_mode(module)
    table = {**DEFAULT_CONVERTERS, **(converters or {})}  # the caller's entries win
    try:
        gm = fx.GraphModule(module, _Tracer(table).trace(module))
    except UnsupportedLayerError:
        raise
    except Exception as e:  # fx raises many types for data-dependent control flow
        raise UnsupportedLayerError(
            f"could not trace {_name(module)} with torch.fx ({type(e).__name__}: "
            f"{e}). Hint: write the generator as nn.Sequential or a forward without data-dependent "
            "control flow, or pass a ganinvert.Chain.") from e

    param = next(module.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(seed)
    if latent_shape is not None:
        latent_shape = checked_latent_shape(latent_shape)
    shapes = [latent_shape] if latent_shape is not None else _candidate_latent_shapes(gm, module)
    errors = {s: probe(gm, torch.randn(_PROBE_BATCH, *s, generator=gen).to(dtype=dtype, device=device))
              for s in shapes}
    probe_ok = [s for s, e in errors.items() if e is None]
    if not probe_ok:
        why = "".join(f"; on {(_PROBE_BATCH, *s)}: {type(e).__name__}: {e}" for s, e in errors.items())
        last = next(reversed(errors.values()), None)  # the cause shown in the traceback
        got = f"latent_shape={tuple(latent_shape)}" if latent_shape is not None else "no latent_shape"
        more = any(isinstance(e, TypeError) and "required positional argument" in str(e) for e in errors.values())
        hint = ("Fix: forward takes inputs besides z: pass them as invert(G, x, cond=...)" if more else
                "Hint: pass latent_shape=(...), the per-sample shape of z the generator takes.")
        raise ShapeMismatchError(
            f"Expected: a latent shape {_name(module)} runs on, Got: {got}; could not run {_name(module)} on "
            f"latents of shape {[(_PROBE_BATCH, *s) for s in shapes] or 'unknown'}{why}. {hint}") from last
    in_shape = probe_ok[0]

    chain = lift(gm, torch.randn(_PROBE_BATCH, *in_shape, generator=gen).to(dtype=dtype, device=device), table)
    if not differentiable:
        chain = chain.detach()
    if check:
        _check(chain, module, dtype, device, gen)
    logger.debug("%s", chain.describe())
    return chain


def _check(chain: Chain, module: nn.Module, dtype, device, gen) -> None:
    z = torch.randn(4, *chain.in_shape, generator=gen).to(dtype=dtype, device=device)
    with torch.no_grad():
        want = module(z).to(torch.float64)
        got = chain(z.to(torch.float64))
    if got.shape != want.shape:
        raise ChainMismatchError(f"chain output shape {tuple(got.shape)} differs from the module's "
                                 f"{tuple(want.shape)}")
    rtol = tolerance(dtype).chain_check
    err = (got - want).abs().max().item()
    scale = want.abs().max().item() + 1.0
    if not err <= rtol * scale:
        raise ChainMismatchError(
            f"the layer chain does not reproduce {_name(module)}: max |chain(z) - module(z)| "
            f"= {err:.3g} (allowed {rtol * scale:.3g}). Hint: forward may do something the trace "
            "did not record (in-place edits, Python-side constants); pass a ganinvert.Chain instead.")
