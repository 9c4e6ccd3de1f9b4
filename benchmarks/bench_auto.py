"""method="auto" beside Adam at equal wall time, on generators whose layers do not all expand.

For each generator, N observations x = G(z*), z* ~ N(0, I) (seed 11), float64:

  auto   ganinvert.invert(method="auto"): G(z) = x rate (relative residual <= 1e-6), z = z*
         rate (latent error <= 1e-6), EXACT and false EXACT (EXACT with z != z*), s/sample, the
         profile (seconds per stage, from result.timings) and which stage solved the samples
  adam   Adam on ||G(z) - x||^2, 8 restarts, lr 0.05, its steps set so that it runs as long as
         auto did (per-step cost measured in the same run): rates and median errors

The 64x64 RGB DCGAN (ganinvert.nets.random_dcgan64, seeded random weights) runs in its own
process (peak memory is that process's max RSS) with auto under a time limit, and Adam at
the same wall time.

    python benchmarks/bench_auto.py [--samples 200] [--models mlp_gan dcgan dcgan_odd paper]
                                    [--big 16] [--big-time-limit 600]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from collections import Counter

import torch

import ganinvert as gi
from ganinvert import models
from ganinvert.nets import random_dcgan64
from ganinvert.models.reference import paper_decoder, reference_path

RTOL = 1e-6


def generator(name: str) -> tuple[torch.nn.Module, int] | None:
    if name == "paper":
        path = reference_path()
        return (paper_decoder(path).double(), 20) if path.exists() else None
    return models.load(name).generator.double(), models.SPECS[name].latent_dim


def errors(r: gi.InversionResult, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent error against the known ``z*`` and output error (the result's own residual)."""
    return (r.z.reshape(z.shape[0], -1) - z).norm(dim=1) / z.norm(dim=1), r.residual


def adam_for(G, x: torch.Tensor, k: int, seconds: float, *, latent_shape=None) -> tuple[gi.InversionResult, int]:
    """Adam, 8 restarts, with as many steps as fit in ``seconds`` (its step cost measured here)."""
    probe = 10
    gi.invert(G, x[:1], method=gi.Adam(steps=1, restarts=8), latent_shape=latent_shape, progress=False)  # warm-up
    t = time.perf_counter()
    gi.invert(G, x, method=gi.Adam(steps=probe, restarts=8, lr=0.05), latent_shape=latent_shape, progress=False)
    per_step = (time.perf_counter() - t) / probe
    steps = max(1, int(seconds / per_step))
    r = gi.invert(G, x, method=gi.Adam(steps=steps, restarts=8, lr=0.05), latent_shape=latent_shape,
                  progress=False)
    return r, steps


def bench(name: str, n: int) -> None:
    got = generator(name)
    if got is None:
        print(f"\n## {name}: skipped (../shared/reference_nets absent)")
        return
    G, k = got
    z = torch.randn(n, k, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    with torch.no_grad():
        x = G(z)
    t = time.perf_counter()
    r = gi.invert(G, x, method="auto", progress=False)
    t_auto = time.perf_counter() - t
    lat, out = errors(r, z)
    solved = r.residual <= RTOL
    print(f"\n## {name} ({n} samples, latent {k})\n")
    print(gi.to_chain(G).describe())
    print(f"\nauto: G(z) = x {solved.float().mean():.1%}, z = z* {(lat <= 1e-6).float().mean():.1%}, "
          f"EXACT {r.exact.float().mean():.1%}, false EXACT {int((r.exact & (lat > 1e-6)).sum())}, "
          f"{t_auto / n:.3f} s/sample ({t_auto:.1f} s)")
    if (~solved).any():
        print(f"  unsolved: median latent error {lat[~solved].median():.2e}, output error {out[~solved].median():.2e}")
    print("  profile (s):", ", ".join(f"{k[7:]} {v:.1f}" for k, v in sorted(r.timings.items(), key=lambda kv: -kv[1])
                                    if k.startswith("stage: ") and v >= 0.05))
    # the last stage of each path (the last layer's solver where the layer-wise pass solved it)
    last = (m.split(">")[-1].split("/")[-1] for m, s in zip(r.methods, solved.tolist(), strict=True) if s)
    print("  solved by:", dict(Counter(last)))
    ra, steps = adam_for(G, x, k, t_auto)
    la, oa = errors(ra, z)
    print(f"adam (8 restarts x {steps} steps, same wall time): G(z) = x {(ra.residual <= RTOL).float().mean():.1%}, "
          f"z = z* {(la <= 1e-6).float().mean():.1%}, median output error {oa.median():.2e}, "
          f"median latent error {la.median():.2e}")


def _big(n: int, time_limit: float, queue) -> None:
    torch.manual_seed(0)  # nothing here draws from it; set so a stray draw cannot vary the run
    G = random_dcgan64(seed=0, dtype=torch.float64)
    z = torch.randn(n, 100, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    with torch.no_grad():
        x = G(z)
    t = time.perf_counter()
    r = gi.invert(G, x, method="auto", time_limit=time_limit, progress=False)
    t_auto = time.perf_counter() - t
    lat, out = errors(r, z)
    rss_auto = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    ra, steps = adam_for(G, x, 100, t_auto)
    la, oa = errors(ra, z)
    queue.put((t_auto, dict(Counter(s.name for s in r.status)), out.median().item(), lat.median().item(), rss_auto,
               steps, oa.median().item(), la.median().item(),
               {k[7:]: round(v, 1) for k, v in r.timings.items() if k.startswith("stage: ") and v >= 0.05}))


def bench_big(n: int, time_limit: float) -> None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_big, args=(n, time_limit, q))
    p.start()
    t_auto, counts, out, lat, rss, steps, oa, la, prof = q.get()
    p.join()
    print(f"\n## 64x64 RGB DCGAN, seeded random weights ({n} samples, latent 100x1x1, float64)\n")
    print(f"auto (time_limit={time_limit:g} s): {t_auto:.0f} s, statuses {counts}, median output error {out:.2e}, "
          f"median latent error {lat:.2e}; peak RSS of the process {rss:.2f} GiB")
    print(f"  profile (s): {prof}")
    print(f"adam (8 restarts x {steps} steps, same wall time): median output error {oa:.2e}, "
          f"median latent error {la:.2e}; output error ratio auto/adam {out / oa:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--models", nargs="+", default=["mlp_gan", "dcgan", "dcgan_odd", "paper"])
    ap.add_argument("--big", type=int, default=16, help="samples of the 64x64 DCGAN (0: skip)")
    ap.add_argument("--big-time-limit", type=float, default=600.0)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.models:
        bench(name, args.samples)
    if args.big:
        bench_big(args.big, args.big_time_limit)


if __name__ == "__main__":
    main()
