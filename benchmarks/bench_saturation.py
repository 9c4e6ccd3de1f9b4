"""The saturation stress family (docs/design.md §3b, §3.7; issue 27): every shipped GAN with its last
layer's weight and bias scaled by k, so that its output is driven into the ends of its range as
generators trained to convergence by others are. Per (generator, k): N observations x = G(z*),
float64, 2 threads; the default ``invert`` with ``time_limit`` = N x the per-sample budget, then
(with ``--adam``) Adam with 4 restarts for the same wall time, and (with ``--adam1000``) the
default's time over that of Adam's defaults (1000 steps, lr 0.05, 1 restart) on the same batch.

    python benchmarks/bench_saturation.py [--models mlp_gan dcgan_odd ...] [--ks 1 2 3 4]
                                          [--samples 8] [--per-sample 1.0] [--adam] [--adam1000] [--seed 1]

Prints one row per (generator, k): the share of deeply saturated pixels (within 1e-5 of an end of
the range), G(z) = x (relative residual <= 1e-6) out of N, EXACT and false EXACT (EXACT with a
latent error above 1e-6), seconds per sample, and the median relative output error.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import ganinvert as gi
from ganinvert import models

RTOL = 1e-6
DEEP = 1e-5


def stressed(name: str, k: float) -> tuple[nn.Module, models.Loaded]:
    """Shipped generator ``name`` in float64 with its last layer's weight and bias scaled by ``k``."""
    m = models.load(name)
    G = m.generator.double().eval()
    last = [q for q in G.modules() if isinstance(q, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))][-1]
    with torch.no_grad():
        last.weight.mul_(k)
        if last.bias is not None:  # a DCGAN's last layer often has none
            last.bias.mul_(k)
    return G, m


def deep_share(x: torch.Tensor, pixel_range: tuple[float, float]) -> float:
    lo, hi = pixel_range
    return ((x - lo < DEEP) | (hi - x < DEEP)).double().mean().item()


def main() -> None:
    gans = [n for n, s in models.SPECS.items() if s.kind == "gan"]
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=gans, choices=gans)
    ap.add_argument("--ks", type=float, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--per-sample", type=float, default=1.0, help="time_limit per sample, seconds")
    ap.add_argument("--adam", action="store_true", help="also Adam, 4 restarts, for the default's wall time")
    ap.add_argument("--adam1000", action="store_true", help="also the default's time / Adam-1000's time")
    ap.add_argument("--seed", type=int, default=1, help="the latents z*")
    args = ap.parse_args()
    torch.set_num_threads(2)
    n = args.samples
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64, {n} samples x = G(z*) per row, "
          f"default invert with time_limit = {args.per_sample:g} s/sample")
    print(f"{'generator':<22} {'k':>3} {'deep':>6} {'G(z)=x':>7} {'EXACT':>5} {'false':>5} {'s/sample':>8} "
          f"{'med err':>8}" + (f" {'adam4 G=x':>9} {'med err':>8}" if args.adam else "")
          + (f" {'/adam1000':>9}" if args.adam1000 else ""))
    for name in args.models:
        for k in args.ks:
            G, m = stressed(name, k)
            z = torch.randn(n, m.latent_dim, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64)
            labels = (torch.arange(n) % m.n_classes,) if m.n_classes else ()
            with torch.no_grad():
                x = G(z, *labels)
            t = time.perf_counter()
            r = gi.invert(G, x, cond=labels or None, time_limit=args.per_sample * n, progress=False)
            seconds = time.perf_counter() - t
            err = (r.z.reshape(n, -1) - z).norm(dim=1) / z.norm(dim=1)
            solved = r.residual <= RTOL
            row = (f"{name:<22} {k:>3g} {deep_share(x, m.pixel_range):>6.1%} {int(solved.sum()):>4}/{n:<2} "
                   f"{int(r.exact.sum()):>5} {int((r.exact & (err > RTOL)).sum()):>5} {seconds / n:>8.2f} "
                   f"{r.residual.median():>8.1e}")
            if args.adam:
                a = gi.invert(G, x, cond=labels or None, method=gi.Adam(restarts=4, steps=10**6, seed=0),
                              time_limit=seconds, progress=False)
                row += f" {int((a.residual <= RTOL).sum()):>6}/{n:<2} {a.residual.median():>8.1e}"
            if args.adam1000:
                t = time.perf_counter()
                gi.invert(G, x, cond=labels or None, method=gi.Adam(steps=1000, seed=0), progress=False)
                row += f" {seconds / (time.perf_counter() - t):>8.2f}x"
            print(row, flush=True)


if __name__ == "__main__":
    main()
