"""Gradients through the inversion: what the backward pass costs next to the inversion itself.

On a random 20-100-500 ReLU net with bias (the paper's random-net shape), B observations
x = G(z*), z* ~ N(0, I), float64, all in one run:

  forward            ganinvert.invert(G, x): the plain inversion (no graph)
  forward, graph     ganinvert.invert(G, x, differentiable=True): the same plus the answer map
                     on the autograd graph
  backward           (res.z * c).sum().backward(): gradients to x and to G's four tensors
  cvxpylayers        the same with Layerwise(solver="cvxpylayers"), on fewer samples: every
                     layer LP solved and differentiated by cvxpylayers (Clarabel + diffcp)

The target: backward <= 2 x forward at B = 256. Also printed: how far the native gradients are
from the cvxpylayers ones on the shared samples.

    python benchmarks/bench_grad.py [--batch 256] [--cvx-batch 16] [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import torch

import ganinvert as gi
from ganinvert import nets


def timed(fn, repeats: int):
    """Best wall time of ``repeats`` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run(G, x, c, method, repeats: int):
    """(forward s, forward-with-graph s, backward s, gradients) for one method."""
    t_plain, plain = timed(lambda: gi.invert(G, x, method=method), repeats)
    grads, t_fwd, t_bwd = None, float("inf"), float("inf")
    for _ in range(repeats):
        G.zero_grad()
        xx = x.clone().requires_grad_(True)
        t = time.perf_counter()
        res = gi.invert(G, xx, method=method, differentiable=True)
        t_fwd = min(t_fwd, time.perf_counter() - t)
        loss = (res.z * c).sum()
        t = time.perf_counter()
        loss.backward()
        t_bwd = min(t_bwd, time.perf_counter() - t)
        grads = [xx.grad] + [p.grad.clone() for p in G.parameters()]
    return t_plain, t_fwd, t_bwd, grads, plain, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--cvx-batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    G = nets.random_mlp((20, 100, 500), act="relu", seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    z = torch.randn(args.batch, 20, generator=gen, dtype=torch.float64)
    c = torch.randn(args.batch, 20, generator=gen, dtype=torch.float64)
    x = G(z).detach()
    gi.invert(G, x[:8], differentiable=True).z.sum().backward()  # warm-up: torch's one-time costs

    t_plain, t_fwd, t_bwd, native, plain, res = run(G, x, c, "layerwise", args.repeats)
    B = args.batch
    print(f"20-100-500 ReLU net, B = {B}, float64, {torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"  statuses: {plain.counts()}; differentiable: {int(res.differentiable.sum())}/{B}")
    print(f"  forward (plain invert)        {t_plain:8.3f} s  ({1e3 * t_plain / B:.2f} ms/sample)")
    print(f"  forward, differentiable=True  {t_fwd:8.3f} s  ({t_fwd / t_plain:.2f} x the plain forward)")
    print(f"  backward                      {t_bwd:8.3f} s  ({t_bwd / t_plain:.2f} x the plain forward, "
          f"{t_bwd / t_fwd:.2f} x the differentiable one; target <= 2)")

    n = args.cvx_batch
    _, t_fwd_c, t_bwd_c, lp, _, res_c = run(G, x[:n], c[:n], gi.Layerwise(solver="cvxpylayers"), 1)
    _, t_fwd_n, t_bwd_n, nat, _, _ = run(G, x[:n], c[:n], "layerwise", args.repeats)
    print(f"cvxpylayers path, B = {n}: statuses {res_c.counts()}")
    print(f"  forward {1e3 * t_fwd_c / n:8.1f} ms/sample, backward {1e3 * t_bwd_c / n:8.1f} ms/sample  "
          f"(native: {1e3 * t_fwd_n / n:.2f} and {1e3 * t_bwd_n / n:.2f} ms/sample; "
          f"{(t_fwd_c + t_bwd_c) / (t_fwd_n + t_bwd_n):.0f} x slower)")
    names = ["x"] + [name for name, _ in G.named_parameters()]
    worst = max(((a - b).norm() / b.norm()).item() for a, b in zip(nat, lp, strict=True))
    print(f"  native vs cvxpylayers gradients ({', '.join(names)}): largest relative difference {worst:.1e}")


if __name__ == "__main__":
    main()
