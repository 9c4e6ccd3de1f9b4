"""Noisy inversion: median latent relative error against the noise level, l_inf / l1 / l2 vs Adam.

    python benchmarks/bench_noise.py [--samples 200]

Observations ``x = relu-output G(z*) + e``, ``e`` uniform in ``[-eps, eps]`` (clamped at 0), on a
random 20-100-500 ReLU net and on the paper's decoder (``../shared/reference_nets``, skipped when
absent). Prints one row per eps with each method's median error and time (``linf est``: noise
level not given, estimated from x), the ratio of the l_inf LP's error to Adam's, and the share of
samples given a certified bound.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import ganinvert as gi
from ganinvert.nets import random_mlp
from ganinvert.models.reference import paper_decoder, reference_path

REFERENCE = reference_path()


def run(name: str, G, n: int, seed: int) -> None:
    chain = gi.to_chain(G)
    z = torch.randn(n, chain.in_dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        x0 = chain(z)
    print(f"\n== {name}, {n} samples: median ||z - z*|| / ||z*|| (seconds)")
    methods = ("linf", "linf est", "l1", "l2", "adam")
    print(f"{'eps':>6} " + " ".join(f"{m if m != 'adam' else 'Adam 1000 steps':>18}" for m in methods)
          + f" {'linf/Adam':>10} {'bound reported':>15}")
    for eps in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1):
        e = eps * (2 * torch.rand(x0.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64) - 1)
        x = (x0 + e).clamp(min=0)
        cells = {}
        for label, kw in (("linf", {"norm": "linf", "noise": eps}), ("linf est", {"norm": "linf"}),
                          ("l1", {"norm": "l1", "noise": eps}), ("l2", {"norm": "l2", "noise": eps}),
                          ("adam", {"method": gi.Adam(steps=1000, lr=0.05, seed=seed + 2)})):
            t = time.perf_counter()
            r = gi.invert(chain, x, **kw)
            cells[label] = (((r.z - z).norm(dim=1) / z.norm(dim=1)).median().item(), time.perf_counter() - t, r)
        rep = (~cells["linf"][2].bound.isnan()).float().mean().item()
        print(f"{eps:6.0e} " + " ".join(f"{cells[m][0]:9.2e} ({cells[m][1]:5.1f}s)" for m in methods)
              + f" {cells['linf'][0] / cells['adam'][0]:10.2f} {rep:15.0%}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=777)
    args = ap.parse_args()
    run("random ReLU net 20-100-500", random_mlp((20, 100, 500), seed=0), args.samples, args.seed)
    if REFERENCE.exists():
        run("reference decoder (Lei et al. 2019)", paper_decoder(REFERENCE).double().eval(), args.samples, args.seed)
    else:
        print(f"reference decoder not found at {REFERENCE}: skipped", file=sys.stderr)


if __name__ == "__main__":
    main()
