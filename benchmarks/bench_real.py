"""Real digits, which no generator reproduces exactly: ``invert``'s default (``method="auto"``)
beside Adam, the baseline users run, in the same process.

For each shipped generator, the 64 held-out digits the main job uses (evenly spread over the
1,000 held-out, every class), float64:

  auto   ganinvert.invert(G, x): median PSNR, ms/sample, how many samples were proven out of range
         (the status message says so) and the profile (seconds per stage)
  adam   Adam on ||G(z) - x||^2, 1000 steps, lr 0.05, 1 restart (conf/inverter/adam.yaml), and the
         same with 4 restarts

and the ratios auto / adam (time) and auto - adam (PSNR, dB). Target (issue 16): PSNR at least
Adam's, in at most twice its time.

    python benchmarks/bench_real.py [--models mnist_mlp vae_leaky_20_200_500_784] [--samples 64]
"""

from __future__ import annotations

import argparse
import time

import torch

import ganinvert as gi
from ganinvert import models
from ganinvert.metrics import sample_metrics
from ganinvert.models.data import load_mnist


def run(name: str, n: int) -> None:
    m = models.load(name)
    chain = gi.to_chain(m.generator.double(), latent_shape=(m.latent_dim,))
    x, _ = load_mnist(split="held_out", pixel_range="unit" if m.pixel_range[0] == 0 else "tanh")
    x = x[torch.linspace(0, len(x) - 1, n).long()].double()
    span = m.pixel_range[1] - m.pixel_range[0]
    rows = {}
    for label, method in (("auto", "auto"), ("adam", gi.Adam(steps=1000, lr=0.05, restarts=1, seed=0)),
                          ("adam x4", gi.Adam(steps=1000, lr=0.05, restarts=4, seed=0))):
        t0 = time.perf_counter()
        r = gi.invert(chain, x, method=method)
        ms = 1000 * (time.perf_counter() - t0) / n
        rows[label] = (sample_metrics(r, x, data_range=span)["psnr"].median().item(), ms)
        proven = sum("(proven" in msg for msg in r.messages)
        stages = {k[7:]: round(v, 2) for k, v in r.timings.items() if k.startswith("stage: ")}
        print(f"{name:26s} {label:8s} PSNR {rows[label][0]:6.2f} dB  {ms:7.1f} ms/sample"
              + (f"  proven out of range {proven}/{n}  stages {stages}" if label == "auto" else ""), flush=True)
    (pa, ta), (pb, tb), (pc, tc) = rows["auto"], rows["adam"], rows["adam x4"]
    print(f"{name:26s} auto vs adam: PSNR {pa - pb:+.2f} dB, time x{ta / tb:.2f}; "
          f"vs adam x4: PSNR {pa - pc:+.2f} dB, time x{ta / tc:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["mnist_mlp", "vae_leaky_20_200_500_784", "vae_relu_20_60_784",
                                                    "mnist_mlp_leaky"])
    ap.add_argument("--samples", type=int, default=64)
    args = ap.parse_args()
    for name in args.models:
        run(name, args.samples)


if __name__ == "__main__":
    main()
