"""A traced module's graph, chain or not, as a :class:`~ganinvert.chain.Chain` (docs/design.md §7).

Between two activations every value the graph computes is affine in the current layer's input
``u``: ``op(u) + bias`` (a :class:`Value`). Layers, reshapes, sums, concatenations and
multiplications by constants compose such values; an activation closes a layer. A value the graph
still needs after that activation (a residual block's input, waiting for its shortcut) rides in
the same layer under the identity (:class:`~ganinvert.activations.Parallel`), so a residual block
``f(x) + shortcut(x)`` is a chain whose layers carry ``x`` beside ``f``. What depends on no data
(a condition and what is computed from it, such as a label's embedding; a parameter read
directly) is a constant and folds into the biases.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import fx

from . import activations as acts
from .chain import Chain, Layer
from .converters import Affine, Converter, Reshape
from .errors import UnsupportedLayerError
from .functional import node_pieces
from .operators import Diagonal, LinearOperator, Slice, Stack, Sum, compose

_ADD = frozenset({operator.add, operator.iadd, torch.add, "add", "add_"})
_SUB = frozenset({operator.sub, operator.isub, torch.sub, "sub", "sub_"})
_MUL = frozenset({operator.mul, operator.imul, torch.mul, "mul", "mul_"})
_DIV = frozenset({operator.truediv, operator.itruediv, torch.div, torch.true_divide, "div", "div_", "true_divide"})
_NEG = frozenset({operator.neg, torch.neg, "neg"})
_CAT = frozenset({torch.cat, torch.concat, torch.concatenate})


@dataclass(frozen=True)
class Value:
    """A node's value as ``op(u) + bias`` in the current layer's input ``u``; ``shape`` per sample."""

    op: LinearOperator
    bias: torch.Tensor
    shape: tuple[int, ...]

    def then(self, op: LinearOperator, bias: torch.Tensor | None = None) -> "Value":
        """``op`` applied to this value, plus ``bias``."""
        b = op.matvec(self.bias[None])[0]
        return Value(compose(self.op, op), b if bias is None else b + bias, tuple(op.out_shape))

    def scaled(self, scale: torch.Tensor) -> "Value":
        """Times a constant of this value's shape."""
        return Value(compose(self.op, Diagonal(scale.reshape(self.shape))), self.bias * scale.reshape(-1), self.shape)


class _Lifter:
    """The layers so far and the values computed since the last one."""

    def __init__(self, in_shape: tuple[int, ...], like: torch.Tensor) -> None:
        self.like, self.layers = like, []
        self.start = self._slice(math.prod(in_shape), 0, in_shape)

    def _slice(self, total: int, at: int, shape: tuple[int, ...]) -> Value:
        return Value(Slice(total, at, shape, like=self.like), self.like.new_zeros(math.prod(shape)), tuple(shape))

    def _op(self, v: Value) -> LinearOperator:
        identity = isinstance(v.op, Slice) and v.op.identity  # activation right after activation
        return Diagonal(self.like.new_ones(v.shape)) if identity else v.op

    def activate(self, v: Value, act: acts.Activation, carry: list[Value]) -> list[Value]:
        """Close a layer: ``act`` on ``v``, the identity on ``carry``. Returns ``[act(v), *carry]``
        as values of the new layer's output."""
        if not carry:
            self.layers.append(Layer(self._op(v), v.bias, act, v.shape))
            return [self._slice(math.prod(v.shape), 0, v.shape)]
        vals = [v, *carry]
        sizes = [math.prod(w.shape) for w in vals]
        op = Stack(tuple(self._op(w) for w in vals), tuple(w.shape for w in vals), in_dim=v.op.in_dim)
        act = acts.Parallel([(act, sizes[0])] + [(acts.Identity(), n) for n in sizes[1:]])
        self.layers.append(Layer(op, torch.cat([w.bias for w in vals]), act, (sum(sizes),)))
        starts = [sum(sizes[:i]) for i in range(len(vals))]
        return [self._slice(sum(sizes), at, w.shape) for at, w in zip(starts, vals)]

    def finish(self, out: Value) -> tuple[Layer, ...]:
        """The layers, the last one producing ``out``."""
        if self.layers and isinstance(out.op, Slice) and out.op.identity and not out.bias.any():
            last = self.layers[-1]
            return tuple(self.layers[:-1]) + (Layer(last.op, last.bias, last.act, out.shape),)
        return tuple(self.layers) + (Layer(self._op(out), out.bias, acts.Identity(), out.shape),)


class _Recorder(fx.Interpreter):
    """Runs the graph once (torch.fx's interpreter) and keeps every node's value; extra ``forward``
    arguments take their defaults (``*args`` and ``**kwargs`` none: SNGAN's ``forward(self, z, *args)``)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[fx.Node, object] = {}

    def run_node(self, n: fx.Node):
        self.values[n] = out = super().run_node(n)
        return out

    def placeholder(self, target, args, kwargs):
        # (a second required argument never gets here: the probe that found the latent shape failed)
        return {} if str(target).startswith("**") else super().placeholder(target, args, kwargs)


def evaluate(gm: fx.GraphModule, z: torch.Tensor) -> dict[fx.Node, object]:
    """Every node's value on the probe latents ``z``."""
    recorder = _Recorder(gm)
    with torch.no_grad():
        recorder.run(z)
    return recorder.values


def _where(node: fx.Node) -> str:
    return f"operation {node.target!r} (node '{node.name}')"


class _Graph:
    """One pass over the graph: the data nodes (those that depend on ``z``) as :class:`Value`."""

    def __init__(self, gm: fx.GraphModule, values: dict, table: Mapping[type, Converter], like: torch.Tensor):
        self.gm, self.values, self.table, self.like = gm, values, table, like
        nodes = list(gm.graph.nodes)
        self.order = {n: i for i, n in enumerate(nodes)}
        self.data: dict[fx.Node, Value] = {}
        self.lifter = _Lifter(tuple(values[nodes[0]].shape[1:]), like)
        self.data[nodes[0]] = self.lifter.start
        self.batch = values[nodes[0]].shape[0]

    def _depends(self, node: fx.Node) -> bool:
        return any(a in self.data for a in node.all_input_nodes)

    def _live_after(self, node: fx.Node) -> list[fx.Node]:
        """Data nodes a later tensor-valued node still reads."""
        later = self.order[node]
        return [w for w in self.data
                if any(self.order[u] > later and isinstance(self.values[u], torch.Tensor) for u in w.users)]

    def _const(self, arg, out: torch.Tensor) -> torch.Tensor:
        """A constant operand, broadcast to ``out``'s per-sample shape, flat in float64."""
        raw = self.values[arg] if isinstance(arg, fx.Node) else arg
        t = raw if isinstance(raw, torch.Tensor) else torch.as_tensor(raw, dtype=torch.float64)  # a Python number
        full = torch.broadcast_to(t.to(self.like), out.shape)
        if not bool((full == full[:1]).all()):
            raise UnsupportedLayerError("a value that depends neither on z nor on cond differs between the samples "
                                        "(random noise drawn inside forward?)")
        return full[0].reshape(-1)

    def run(self) -> tuple[Layer, ...]:
        for node in self.gm.graph.nodes:
            if node.op == "output":
                out = node.args[0]
                if not isinstance(out, fx.Node) or out not in self.data:
                    raise UnsupportedLayerError("forward must return one tensor computed from z.")
                return self.lifter.finish(self.data[out])
            if node.op == "placeholder" or not self._depends(node) or not isinstance(self.values[node], torch.Tensor):
                continue
            if self.values[node].shape[0] != self.batch:
                raise UnsupportedLayerError(f"{_where(node)} mixes the samples of a batch.")
            self.data[node] = self._lift(node)
        raise UnsupportedLayerError("the traced graph has no output.")

    def _lift(self, node: fx.Node) -> Value:
        out = self.values[node]
        target = node.target if node.op != "call_method" else str(node.target)
        if node.op != "call_module" and target in _CAT:
            return self._cat(node, out)
        if node.op != "call_module" and target in (_ADD | _SUB | _MUL | _DIV | _NEG):
            return self._arith(node, target, out)
        operands = [a for a in node.all_input_nodes if a in self.data]
        if len(operands) != 1:
            raise UnsupportedLayerError(f"{_where(node)} combines several values computed from z: not linear.")
        v = self.data[operands[0]]
        args = fx.node.map_arg(node.args, lambda n: self.values[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: self.values[n])
        for piece in node_pieces(node, self.gm, v.shape, out, args, kwargs, self.table):
            if isinstance(piece, Reshape):
                v = Value(v.op, v.bias, tuple(piece.shape))
            elif isinstance(piece, Affine):
                if piece.op.in_dim != math.prod(v.shape):
                    raise UnsupportedLayerError(f"{_where(node)} expects {piece.op.in_dim} inputs per sample, "
                                                f"got {v.shape}")
                v = v.then(piece.op, piece.bias)
            else:
                v = self._activate(node, v, piece)
        return v

    def _activate(self, node: fx.Node, v: Value, act: acts.Activation) -> Value:
        live = self._live_after(node)
        new = self.lifter.activate(v, act, [self.data[w] for w in live])
        self.data = dict(zip(live, new[1:]))  # every other value is dead: it read the old layer input
        return new[0]

    def _arith(self, node: fx.Node, target, out: torch.Tensor) -> Value:
        a, b = (list(node.args) + [None])[:2]
        if node.kwargs.get("alpha", 1) != 1 or node.kwargs.get("rounding_mode") is not None:
            raise UnsupportedLayerError(f"{_where(node)} with alpha or rounding_mode is not supported.")
        shape = tuple(out.shape[1:])
        va, vb = (self.data.get(x) if isinstance(x, fx.Node) else None for x in (a, b))
        for v in (va, vb):
            if v is not None and v.shape != shape:
                raise UnsupportedLayerError(f"{_where(node)} broadcasts a value computed from z "
                                            f"from {v.shape} to {shape}.")
        if target in _NEG:
            return va.scaled(-torch.ones_like(va.bias))
        if target in _MUL or target in _DIV:
            if va is not None and vb is not None:
                raise UnsupportedLayerError(f"{_where(node)} multiplies two values computed from z: not linear.")
            if vb is not None and target in _DIV:
                raise UnsupportedLayerError(f"{_where(node)} divides by a value computed from z: not linear.")
            v, c = (va, self._const(b, out)) if va is not None else (vb, self._const(a, out))
            return v.scaled(1.0 / c if target in _DIV else c)
        sign = -1.0 if target in _SUB else 1.0
        if va is not None and vb is not None:
            vb = vb.scaled(torch.full_like(vb.bias, sign))
            return Value(Sum((va.op, vb.op), out_shape=shape), va.bias + vb.bias, shape)
        if va is not None:
            return Value(va.op, va.bias + sign * self._const(b, out), shape)
        vb = vb.scaled(torch.full_like(vb.bias, sign))
        return Value(vb.op, vb.bias + self._const(a, out), shape)

    def _cat(self, node: fx.Node, out: torch.Tensor) -> Value:
        parts = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        dim = dim % out.dim()
        if dim == 0:
            raise UnsupportedLayerError(f"{_where(node)} concatenates along the batch dimension.")
        ops, shapes, biases = [], [], []
        for p in parts:
            t = self.values[p] if isinstance(p, fx.Node) else torch.as_tensor(p)
            shape = tuple(t.shape[1:])
            v = self.data.get(p) if isinstance(p, fx.Node) else None
            ops.append(None if v is None else v.op)
            shapes.append(shape)
            biases.append((v.bias if v is not None else self._const(p, t)).reshape(shape))
        in_dim = next(op for op in ops if op is not None).in_dim
        shape = tuple(out.shape[1:])
        op = Stack(tuple(ops), tuple(shapes), in_dim=in_dim, dim=dim - 1)
        return Value(op, torch.cat(biases, dim - 1).reshape(-1), shape)


def lift(gm: fx.GraphModule, z: torch.Tensor, table: Mapping[type, Converter]) -> Chain:
    """The chain of ``gm``, traced with its converters' types as leaves, read on the probe latents
    ``z`` (B, *latent shape); float64, on ``z``'s device, attached to the module's parameters."""
    values = evaluate(gm, z)
    like = torch.zeros(0, dtype=torch.float64, device=z.device)
    layers = _Graph(gm, values, table, like).run()
    if not layers:
        raise UnsupportedLayerError("the generator has no layers to invert.")
    return Chain(tuple(layer.to(device=z.device) for layer in layers), tuple(z.shape[1:]))
