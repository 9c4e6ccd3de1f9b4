"""Certificates past one layer (docs/design.md §3.8-§3.9; issue 28): per generator, N observations
x = G(z*) (float64, 2 threads), the default ``invert`` with its certificates and again with
``radius=False`` (the time they add, on the same batch), then the radius checked by perturbing each
answer by 0.9 r in random directions.

    python benchmarks/bench_certificates.py [--models mlp_gan dcgan dcgan_odd paper]
                                            [--samples 48] [--paper-samples 1000] [--seed 11]
                                            [--ks 1 2 3] [--real 16]

``--ks``: the saturation stress family too (the last layer's weight and bias scaled by k,
``bench_saturation.py``), at 1 s/sample as there. ``--real N``: N real held-out digits as well
(``bench_curves.py``'s), where every answer is APPROXIMATE: the certificates must cost nothing.

Prints one row per generator: G(z) = x, z = z* (latent error <= 1e-6), EXACT and false EXACT, the
share of solved answers with a positive radius, the median radius relative to ||z||, the smallest
relative output change at 0.9 r (over 8 directions per answer; 0 would be a second pre-image),
how many of those changes are within rtol = 1e-6 (a step that small is *approximately* a
pre-image: the radius is a statement about exact ones), and seconds with / without certificates.
"""

from __future__ import annotations

import argparse
import time

import torch

import ganinvert as gi
from ganinvert import models
from ganinvert.models.reference import paper_decoder, reference_path

from bench_curves import digits  # the real held-out digits
from bench_saturation import stressed  # the stress family

RTOL = 1e-6
DIRECTIONS = 8


def generator(name: str, k: float = 1.0):
    if name == "paper":
        return paper_decoder(reference_path()), 20
    G, m = stressed(name, k)
    return G, m.latent_dim


def perturbed(G, z: torch.Tensor, x: torch.Tensor, r: torch.Tensor, seed: int) -> tuple[float, int]:
    """Smallest ``||G(z + 0.9 r u) - G(z)|| / ||G(z)||`` over ``DIRECTIONS`` unit ``u`` per sample, and
    how many of those are within ``RTOL``."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(DIRECTIONS, *z.shape, generator=g, dtype=z.dtype)
    u = u / u.flatten(2).norm(dim=2).reshape(DIRECTIONS, z.shape[0], *[1] * (z.dim() - 1))
    step = (0.9 * r).reshape(1, -1, *[1] * (z.dim() - 1)) * u
    with torch.no_grad():
        base = G(z).flatten(1)
        moved = torch.stack([G(z + s).flatten(1) for s in step])
    change = (moved - base).norm(dim=2) / base.norm(dim=1)
    return change.min().item(), int((change <= RTOL).sum())


def timed(G, x: torch.Tensor, **options) -> tuple[gi.InversionResult, float, float]:
    """The default on ``x`` with its certificates, and its seconds with and without them (after a
    warm-up call: the first call of a process pays for imports)."""
    gi.invert(G, x[:2], progress=False)
    t = time.perf_counter()
    r = gi.invert(G, x, progress=False, **options)
    with_cert = time.perf_counter() - t
    t = time.perf_counter()
    gi.invert(G, x, progress=False, radius=False, **options)
    return r, with_cert, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["mlp_gan", "dcgan", "dcgan_odd", "paper"])
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--paper-samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--ks", type=float, nargs="+", default=[1.0], help="last-layer scales (the stress family)")
    ap.add_argument("--real", type=int, default=0, help="also this many real digits per shipped generator")
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"{'generator':<12} {'N':>5} {'G(z)=x':>7} {'z=z*':>6} {'EXACT':>6} {'false':>5} {'r>0':>7} "
          f"{'med r/|z|':>9} {'min change@0.9r':>15} {'<=rtol':>6} {'s cert':>7} {'s plain':>7} {'ratio':>6}")
    for name, scale in [(n, s) for n in args.models for s in ([1.0] if n == "paper" else args.ks)]:
        G, k = generator(name, scale)
        n = args.paper_samples if name == "paper" else args.samples
        z = torch.randn(n, k, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64)
        with torch.no_grad():
            x = G(z)
        limit = None if scale == 1.0 else float(n)  # the stress family's 1 s/sample
        r, with_cert, plain = timed(G, x, time_limit=limit)
        name = name if scale == 1.0 else f"{name} x{scale:g}"
        err = (r.z.flatten(1) - z).norm(dim=1) / z.norm(dim=1)  # a DCGAN's latents come back (B, k, 1, 1)
        solved, exact = r.solved, r.exact
        local = solved & ~exact & torch.isfinite(r.unique_radius) & (r.unique_radius > 0)
        rel = (r.unique_radius[local] / r.z[local].flatten(1).norm(dim=1)).median().item() if local.any() else float("nan")
        change, within = perturbed(G, r.z[local], x[local], r.unique_radius[local], args.seed) if local.any() else (float("nan"), 0)
        positive = (r.unique_radius[solved] > 0).double().mean().item()
        print(f"{name:<12} {n:>5} {solved.double().mean():>7.1%} {(err <= 1e-6).double().mean():>6.1%} "
              f"{exact.double().mean():>6.1%} {int((exact & (err > 1e-6)).sum()):>5} {positive:>7.1%} {rel:>9.2e} "
              f"{change:>15.2e} {within:>6} {with_cert:>7.1f} {plain:>7.1f} {with_cert / plain:>6.2f}", flush=True)
    for name in [m for m in args.models if m != "paper"] if args.real else []:
        m = models.load(name)
        r, with_cert, plain = timed(m.generator.double().eval(), digits(m, args.real))
        print(f"{name + ' real':<12} {args.real:>5} {r.solved.double().mean():>7.1%} {'-':>6} "
              f"{r.exact.double().mean():>6.1%} {'-':>5} {'-':>7} {'-':>9} {'-':>15} {'-':>6} "
              f"{with_cert:>7.1f} {plain:>7.1f} {with_cert / plain:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
