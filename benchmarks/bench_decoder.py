"""The paper's decoder (Lei et al. 2019, 20-60-784, ReLU-ReLU, ``../shared/reference_nets``): the
default ``invert`` against Adam's defaults (1000 steps, lr 0.05, 1 restart) on the same batch, the
way a user runs either (issue 27's part 3: the default at most Adam-1000's wall time, at >= 99.5%
G(z) = x).

N latents z* ~ N(0, I) (seed 11), x = G(z*), float64, 2 threads; each method is warmed up on 4
samples, then timed ``--repeats`` times, alternating, and the median time is reported. Prints the
time ratio, G(z) = x (relative residual <= 1e-6) over all samples and over the valid ones (an x
that is all zeros is INVALID: every latent in a cone maps to it), z = z* (latent error <= 1e-6),
EXACT and false EXACT, and the default's time per stage.

    python benchmarks/bench_decoder.py [--samples 1000] [--repeats 2] [--seed 11]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import ganinvert as gi
from ganinvert.models.reference import paper_decoder, reference_path

RTOL = 1e-6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    path = reference_path()
    if not path.exists():
        print(f"skipped: {path} is absent (../shared/reference_nets)")
        return
    torch.set_num_threads(2)
    G, n = paper_decoder(path), args.samples
    z = torch.randn(n, 20, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64)
    with torch.no_grad():
        x = G(z)
    methods = {"default": "auto", "adam1000": gi.Adam(steps=1000, lr=0.05, seed=0)}
    times: dict[str, list[float]] = {m: [] for m in methods}
    results = {}
    for name, method in methods.items():
        gi.invert(G, x[:4], method=method, progress=False)  # warm-up
    for _ in range(args.repeats):
        for name, method in methods.items():
            t = time.perf_counter()
            results[name] = gi.invert(G, x, method=method, progress=False)
            times[name].append(time.perf_counter() - t)
    valid = x.norm(dim=1) > 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64, {n} samples (seed {args.seed}), "
          f"{int((~valid).sum())} all-zero x; median of {args.repeats} timings")
    print(f"{'method':<10} {'seconds':>8} {'G(z)=x':>7} {'of valid':>8} {'z=z*':>6} {'EXACT':>6} {'false':>5}")
    for name, r in results.items():
        err = (r.z.reshape(n, -1) - z).norm(dim=1) / z.norm(dim=1)
        solved = r.residual <= RTOL
        print(f"{name:<10} {statistics.median(times[name]):>8.2f} {solved.double().mean():>7.1%} "
              f"{solved[valid].double().mean():>8.1%} {(err <= RTOL).double().mean():>6.1%} "
              f"{r.exact.double().mean():>6.1%} {int((r.exact & (err > RTOL)).sum()):>5}")
    ratio = statistics.median(times["default"]) / statistics.median(times["adam1000"])
    print(f"default / adam1000 time: {ratio:.2f}x (each run: "
          + ", ".join(f"{a / b:.2f}" for a, b in zip(times["default"], times["adam1000"], strict=True)) + ")")
    stages = sorted(((k, v) for k, v in results["default"].timings.items() if k.startswith("stage: ")),
                    key=lambda kv: -kv[1])
    print("default, last run, seconds per stage: " + "; ".join(f"{k[7:]} {v:.2f}" for k, v in stages))


if __name__ == "__main__":
    main()
