"""Main job until the Hydra app lands: invert a batch from a seeded random ReLU generator with
the exact layer-wise inverter and with the Adam baseline, and print the figures.

    python scripts/demo.py [--samples 256] [--dims 20 100 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging

import torch

import ganinvert as gi
from ganinvert.nets import random_mlp


def report(name: str, r: gi.InversionResult, z_true: torch.Tensor) -> None:
    err = (r.z - z_true).norm(dim=1) / z_true.norm(dim=1)
    counts = ", ".join(f"{k}={v}" for k, v in r.counts().items() if v)
    print(f"{name:<10} {r.timings['total']:8.2f} s   z = z* (rel. err <= 1e-6): "
          f"{(err <= 1e-6).float().mean().item():6.1%}   median rel. err {err.median().item():.1e}   [{counts}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--dims", type=int, nargs="+", default=[20, 100, 500])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--adam-steps", type=int, default=1000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    G = random_mlp(args.dims, act="relu", seed=args.seed)
    chain = gi.to_chain(G)
    z = torch.randn(args.samples, args.dims[0], generator=torch.Generator().manual_seed(args.seed + 1),
                    dtype=torch.float64)
    with torch.no_grad():
        x = G(z)
    print(chain.describe())
    print(f"{args.samples} observations x = G(z*), z* ~ N(0, I)\n")
    lw = gi.invert(chain, x)
    report("layerwise", lw, z)
    adam = gi.invert(chain, x, method=gi.Adam(steps=args.adam_steps, lr=0.05, seed=args.seed))
    report("adam", adam, z)
    print(f"\nlayer-wise is {adam.timings['total'] / lw.timings['total']:.1f}x faster than Adam "
          f"({args.adam_steps} steps) on this batch")


if __name__ == "__main__":
    main()
