"""Torch module -> :class:`~ganinvert.chain.Chain`.

The module is traced with ``torch.fx`` and the graph is run once on example latents, so every
reshape (``x.view(-1, C, H, W)``, ``Flatten``, ``Unflatten``...) is read off the real tensor
shapes. Each leaf module is turned into pieces by a converter looked up by type
(:mod:`ganinvert.converters`); consecutive affine pieces are folded into one layer.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from . import activations as acts
from .chain import Chain, Layer
from .converters import DEFAULT_CONVERTERS, Affine, Converter, Piece, Reshape
from .errors import ChainMismatchError, InvalidInputError, ShapeMismatchError, TrainingModeError, UnsupportedLayerError
from .operators import Diagonal, compose
from .tolerances import tolerance

logger = logging.getLogger(__name__)


_RESHAPE_MODULES = (nn.Flatten, nn.Unflatten)
_RESHAPE_FUNCTIONS = frozenset({torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze})
_RESHAPE_METHODS = frozenset({"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze",
                              "contiguous", "view_as", "reshape_as"})
_FUNCTIONAL_ACTS: Mapping[object, Callable[[tuple, dict], acts.Activation]] = MappingProxyType({
    F.relu: lambda a, kw: acts.ReLU(), torch.relu: lambda a, kw: acts.ReLU(),
    torch.relu_: lambda a, kw: acts.ReLU(), F.relu_: lambda a, kw: acts.ReLU(),
    torch.tanh: lambda a, kw: acts.Tanh(), F.tanh: lambda a, kw: acts.Tanh(),
    torch.sigmoid: lambda a, kw: acts.Sigmoid(), F.sigmoid: lambda a, kw: acts.Sigmoid(),
    F.leaky_relu: lambda a, kw: acts.LeakyReLU(a[1] if len(a) > 1 else kw.get("negative_slope", 0.01)),
})
_METHOD_ACTS = MappingProxyType({"relu": acts.ReLU, "relu_": acts.ReLU, "tanh": acts.Tanh,
                                 "tanh_": acts.Tanh, "sigmoid": acts.Sigmoid,
                                 "sigmoid_": acts.Sigmoid})
_MODE_DEPENDENT = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
_PROBE_BATCH = 3


class _Tracer(fx.Tracer):
    """Keeps every module that has a converter as a leaf (user types included)."""

    def __init__(self, converters: Mapping[type, Converter]) -> None:
        super().__init__()
        self._leaf_types = tuple(converters)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, self._leaf_types) or super().is_leaf_module(m, qualname)


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


def _name(module: nn.Module) -> str:
    return module.name if isinstance(module, CallableGenerator) else type(module).__name__


@dataclass(frozen=True)
class _State:
    """Chain under construction: finished layers, the affine map pending since the last
    activation, and the current per-sample shape."""

    layers: tuple[Layer, ...]
    pending: Affine | None
    shape: tuple[int, ...]
    device: torch.device

    def add(self, piece: Piece, where: str) -> "_State":
        if isinstance(piece, Reshape):
            return replace(self, shape=tuple(piece.shape))
        if isinstance(piece, Affine):
            if piece.op.in_dim != math.prod(self.shape):
                raise ShapeMismatchError(f"{where}: expects {piece.op.in_dim} inputs per sample, "
                                         f"Got: {self.shape}")
            if self.pending is None:
                new = piece
            else:  # fold: op2(op1 u + b1) + b2
                b = piece.op.matvec(self.pending.bias[None])[0] + piece.bias
                new = Affine(compose(self.pending.op, piece.op), b)
            return _State(self.layers, new, tuple(piece.op.out_shape), self.device)
        pending = self.pending
        if pending is None:  # activation right after activation: identity map in between
            ones = torch.ones(self.shape, dtype=torch.float64, device=self.device)
            pending = Affine(Diagonal(ones), torch.zeros(ones.numel(), dtype=torch.float64, device=self.device))
        layer = Layer(pending.op, pending.bias, piece, self.shape)
        return _State(self.layers + (layer,), None, self.shape, self.device)

    def finish(self) -> tuple[Layer, ...]:
        layers = self.layers
        if self.pending is not None:
            layers += (Layer(self.pending.op, self.pending.bias, acts.Identity(), self.shape),)
        elif layers:
            layers = layers[:-1] + (replace(layers[-1], out_shape=self.shape),)
        return layers


def _path_hint(node: fx.Node) -> str:
    return f"'{node.target}'" if node.op == "call_module" else f"{node.op} {node.target!r}"


def _pieces(node: fx.Node, module: nn.Module, in_shape: tuple, out: torch.Tensor,
            converters: Mapping[type, Converter]) -> list[Piece]:
    """Pieces for one graph node, given its input shape and its (probed) output."""
    reshape = [Reshape(tuple(out.shape[1:]))]
    if node.op == "call_module":
        sub = module.get_submodule(node.target)
        conv = next((c for t, c in converters.items() if type(sub) is t), None)
        conv = conv or next((c for t, c in converters.items() if isinstance(sub, t)), None)
        if conv is None:
            raise UnsupportedLayerError(
                f"module '{node.target}' of type {type(sub).__name__} is not supported. "
                f"Supported: {', '.join(sorted(t.__name__ for t in converters))}. "
                "Hint: pass converters={YourLayer: fn} to add one.")
        try:
            pieces = list(conv(sub, in_shape))
        except UnsupportedLayerError as e:
            raise UnsupportedLayerError(f"module '{node.target}' ({type(sub).__name__}): {e}") from None
        return pieces + reshape if isinstance(sub, _RESHAPE_MODULES) else pieces
    if node.op == "call_function":
        if node.target in _FUNCTIONAL_ACTS:
            return [_FUNCTIONAL_ACTS[node.target](node.args, dict(node.kwargs))]
        if node.target in _RESHAPE_FUNCTIONS:
            return reshape
    if node.op == "call_method":
        if node.target in _METHOD_ACTS:
            return [_METHOD_ACTS[node.target]()]
        if node.target in _RESHAPE_METHODS:
            return reshape
    raise UnsupportedLayerError(
        f"operation {_path_hint(node)} (node '{node.name}') is not supported: a generator must "
        "be a chain of supported layers, activations and reshapes.")


def check_eval_mode(module: nn.Module) -> None:
    """A module whose output depends on the batch (BatchNorm, Dropout in training mode) is refused."""
    for path, sub in module.named_modules():
        if isinstance(sub, _MODE_DEPENDENT) and sub.training:
            raise TrainingModeError(
                f"module '{path or '<root>'}' ({type(sub).__name__}) is in training mode, so its "
                "output depends on the batch. Hint: call generator.eval() before inverting.")


def _candidate_latent_shapes(gm: fx.GraphModule) -> list[tuple]:
    return latent_shape_candidates(gm.get_submodule(node.target) for node in gm.graph.nodes
                                   if node.op == "call_module")


def latent_shape_candidates(modules) -> list[tuple]:
    """The latent shapes the first layer among ``modules`` (in call order) can take: ``(k,)``
    before a Linear, ``(C, 1, 1)`` or ``(C,)`` before a convolution; none when neither comes."""
    for sub in modules:
        if isinstance(sub, nn.Linear):
            return [(sub.in_features,)]
        if isinstance(sub, (nn.ConvTranspose2d, nn.Conv2d)):
            return [(sub.in_channels, 1, 1), (sub.in_channels,)]
    return []


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
    shapes = [latent_shape] if latent_shape is not None else _candidate_latent_shapes(gm)
    errors = {s: probe(gm, torch.randn(_PROBE_BATCH, *s, generator=gen).to(dtype=dtype, device=device))
              for s in shapes}
    probe_ok = [s for s, e in errors.items() if e is None]
    if not probe_ok:
        why = "".join(f"; on {(_PROBE_BATCH, *s)}: {type(e).__name__}: {e}" for s, e in errors.items())
        last = next(reversed(errors.values()), None)  # the cause shown in the traceback
        got = f"latent_shape={tuple(latent_shape)}" if latent_shape is not None else "no latent_shape"
        raise ShapeMismatchError(
            f"Expected: a latent shape {_name(module)} runs on, Got: {got}; could not run {_name(module)} on "
            f"latents of shape {[(_PROBE_BATCH, *s) for s in shapes] or 'unknown'}{why}. Hint: pass "
            "latent_shape=(...), the per-sample shape of z the generator takes.") from last
    in_shape = probe_ok[0]

    chain = _build(gm, module, in_shape, table, dtype, device, gen)
    if not differentiable:
        chain = chain.detach()
    if check:
        _check(chain, module, dtype, device, gen)
    logger.debug("%s", chain.describe())
    return chain


def _build(gm, module, in_shape, table, dtype, device, gen) -> Chain:
    z = torch.randn(_PROBE_BATCH, *in_shape, generator=gen).to(dtype=dtype, device=device)
    values: dict[fx.Node, torch.Tensor] = {}
    states: dict[fx.Node, _State] = {}
    consumed: set[fx.Node] = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if states:  # forward(z, extra=default): only the first argument is data
                if str(node.target).startswith("*"):  # forward(z, *args, **kw) (SNGAN): called with z alone
                    values[node] = {} if str(node.target).startswith("**") else ()
                    continue
                if not node.args:
                    raise UnsupportedLayerError(f"forward takes a second required argument "
                                                f"'{node.target}'; generators take only z.")
                values[node] = node.args[0]
                continue
            values[node] = z
            states[node] = _State((), None, in_shape, torch.device(device))
            continue
        if node.op == "get_attr":
            raise UnsupportedLayerError(f"generator reads attribute '{node.target}' directly in "
                                        "forward; only layer calls are supported.")
        data_in = [a for a in node.all_input_nodes if a in states]
        if node.op == "output":
            state = states[data_in[0]]
            break
        args = fx.node.map_arg(node.args, lambda n: values[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: values[n])
        with torch.no_grad():
            if node.op == "call_module":
                out = gm.get_submodule(node.target)(*args, **kwargs)
            elif node.op == "call_function":
                out = node.target(*args, **kwargs)
            else:
                out = getattr(args[0], node.target)(*args[1:], **kwargs)
        values[node] = out
        if not isinstance(out, torch.Tensor):
            continue  # shape metadata such as z.shape[0] or z.size(0): off the data path
        if len(data_in) != 1 or data_in[0] in consumed:
            raise UnsupportedLayerError(
                f"operation {_path_hint(node)} (node '{node.name}') joins or branches the data "
                "path; only straight chains are supported (no residual connections or concat).")
        consumed.add(data_in[0])
        if out.shape[0] != _PROBE_BATCH:
            raise UnsupportedLayerError(f"operation {_path_hint(node)} (node '{node.name}') mixes "
                                        "the samples of a batch.")
        state = states[data_in[0]]
        for piece in _pieces(node, gm, state.shape, out, table):
            state = state.add(piece, f"module {_path_hint(node)}")
        states[node] = state
    layers = state.finish()
    if not layers:
        raise UnsupportedLayerError(f"{_name(module)} has no layers to invert.")
    return Chain(tuple(layer.to(device=device) for layer in layers), tuple(in_shape))


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
