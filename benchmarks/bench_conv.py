"""The transposed convolutions of the shipped generators, computed as ``operators.ConvTranspose2d``
does (channels-last input on CPU where it has more than a few output channels, ``fold(W^T u)``
where it has few) against torch's kernel on the contiguous input (docs/design.md §3.7). Per layer
and dtype: milliseconds for a forward pass, and a forward and backward pass (the pixel fit's
L-BFGS), at batch 8 (a fit) and 512 (a Jacobian's 64 directions for 8 samples), median of 7.

    python benchmarks/bench_conv.py [--models dcgan dcgan_odd ...]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import ganinvert as gi
from ganinvert import models
from ganinvert.operators import Composed, ConvTranspose2d


def median_ms(fn, n: int = 7) -> float:
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[n // 2] * 1e3


def forward_backward(apply, u: torch.Tensor) -> None:
    u = u.clone().requires_grad_(True)
    torch.autograd.grad((apply(u) ** 2).sum(), u)


def main() -> None:
    conv = [n for n, s in models.SPECS.items() if s.kind == "gan"]
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["dcgan", "dcgan_odd", "dcgan_upsample"], choices=conv)
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, 2 threads; ms: torch's kernel on contiguous input -> ganinvert's operator")
    for name in args.models:
        chain = gi.to_chain(models.load(name).generator.double())
        for i, layer in enumerate(chain.layers):
            op = layer.op.first if isinstance(layer.op, Composed) else layer.op
            if not isinstance(op, ConvTranspose2d):
                continue
            for dtype in (torch.float64, torch.float32):
                w = op.weight.to(dtype)
                ours = op.map_tensors(lambda t: t.to(dtype))
                plain = lambda u: F.conv_transpose2d(u.view(-1, *op.in_shape), w, None, **op.geometry).reshape(u.shape[0], -1)  # noqa: E731
                cells = []
                for batch in (8, 512):
                    u = torch.randn(batch, op.in_dim, dtype=dtype, generator=torch.Generator().manual_seed(0))
                    a, b = median_ms(lambda: plain(u)), median_ms(lambda: ours.matvec(u))
                    c, d = median_ms(lambda: forward_backward(plain, u)), median_ms(lambda: forward_backward(ours.matvec, u))
                    cells.append(f"B={batch}: forward {a:6.1f} -> {b:6.1f} ({a / b:3.1f}x), "
                                 f"with backward {c:6.1f} -> {d:6.1f} ({c / d:3.1f}x)")
                print(f"{name:15s} layer {i} {op.in_shape} -> {op.out_shape} {str(dtype)[6:]:8s} " + " | ".join(cells))


if __name__ == "__main__":
    main()
