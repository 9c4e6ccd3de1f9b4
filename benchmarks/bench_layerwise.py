"""Layer-wise inversion against its baselines, on one batch, in one run.

For the paper's reference decoder (20-60-784, ../shared/reference_nets, skipped when absent)
and a random 20-100-500 ReLU net, on the same N observations x = G(z*), z* ~ N(0, I):

  fast path   bare least squares on the positive rows, layer by layer (no LP, no checks)
  layerwise   ganinvert.invert: certified fast path + batched IPM + uniqueness test
  highs       the same layer-wise LPs solved by HiGHS one sample at a time (no fast path)
  adam        Adam on ||G(z) - x||^2, one random start, 1000 steps, lr 0.05, float64

    python benchmarks/bench_layerwise.py [--samples 1000] [--highs-samples 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn

import ganinvert as gi
from ganinvert import nets
from ganinvert.models.reference import paper_decoder, reference_path
from ganinvert.lp.fastpath import lstsq_fast_path
from ganinvert.lp.layer import make_problem

REFERENCE = reference_path()


def reference_decoder() -> nn.Module | None:
    return paper_decoder(REFERENCE) if REFERENCE.exists() else None


def bare_fast_path(chain: gi.Chain, x: torch.Tensor) -> torch.Tensor:
    """Least squares on each layer's positive rows, backwards, taking whatever comes out."""
    y = x
    for i in reversed(range(len(chain))):
        layer = chain.layers[i]
        tol = 1e-7 * y.abs().amax(1).clamp(min=1e-300)
        prob = make_problem(layer.op.dense(), layer.bias, layer.act, y, u_range=chain.input_range(i), tol=tol)
        y = lstsq_fast_path(prob, tol=tol).u
    return y


def rel_err(a, b):
    return (a - b).norm(dim=1) / b.norm(dim=1)


def bench(name: str, G: nn.Module, n: int, n_highs: int, seed: int) -> None:
    chain = gi.to_chain(G)
    z = torch.randn(n, chain.in_dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        x = chain(z)
    rows = []

    t = time.perf_counter()
    z_fp = bare_fast_path(chain, x)
    t_fp = time.perf_counter() - t
    res_fp = rel_err(chain(z_fp), x)
    rows.append(("fast path", t_fp, n, rel_err(z_fp, z), res_fp, None))

    r = gi.invert(chain, x, method="layerwise")
    t_lw = r.timings["total"]
    rows.append(("layerwise", t_lw, n, rel_err(r.z, z), r.residual, r.exact))

    # layer-wise, then the pattern descent from Adam's restarts, then kicks; Adam's starts and the
    # kicks come from a stream other than z*'s
    ro = gi.invert(chain, x, method=gi.Auto(seed=seed + 1))
    rows.append(("auto", ro.timings["total"], n, rel_err(ro.z, z), ro.residual, ro.exact))

    rh = gi.invert(chain, x[:n_highs], method=gi.Layerwise(solver="highs", fast_path=False))
    rows.append(("highs", rh.timings["total"], n_highs, rel_err(rh.z, z[:n_highs]), rh.residual, rh.exact))

    # the starts must not come from the generator that drew z* (seed + 1 vs seed)
    ra = gi.invert(chain, x, method=gi.Adam(steps=1000, lr=0.05, restarts=1, seed=seed + 1))
    rows.append(("adam", ra.timings["total"], n, rel_err(ra.z, z), ra.residual, None))

    print(f"\n== {name}: {chain.in_dim} -> {' -> '.join(str(l.op.out_dim) for l in chain.layers)}, "
          f"{n} samples, {torch.get_num_threads()} threads, {torch.__version__}")
    print(f"{'method':<10} {'time s':>8} {'ms/sample':>10} {'z = z*':>8} {'G(z) = x':>9} {'EXACT':>7} "
          f"{'median |z-z*|/|z*|':>19} {'false EXACT':>11}")
    for label, secs, m, err, res, exact in rows:
        ex = f"{exact.float().mean().item():7.1%}" if exact is not None else f"{'-':>7}"
        false = f"{int((exact & (err > 1e-6)).sum()):11d}" if exact is not None else f"{'-':>11}"
        print(f"{label:<10} {secs:8.2f} {1e3 * secs / m:10.3f} {(err <= 1e-6).float().mean().item():8.1%} "
              f"{(res <= 1e-6).float().mean().item():9.1%} {ex} {err.median().item():19.1e} {false}")
    per = {label: secs / m for label, secs, m, *_ in rows}
    print(f"ratios (per sample): adam / layerwise = {per['adam'] / per['layerwise']:.1f}x, "
          f"highs / layerwise = {per['highs'] / per['layerwise']:.1f}x, "
          f"layerwise / fast path = {per['layerwise'] / per['fast path']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--highs-samples", type=int, default=1000, help="HiGHS is slow: a prefix of the batch")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    dec = reference_decoder()
    if dec is None:
        print(f"reference decoder not found at {REFERENCE}: skipped", file=sys.stderr)
    else:
        bench("reference decoder (Lei et al. 2019)", dec, args.samples, args.highs_samples, args.seed)
    bench("random ReLU net", nets.random_mlp((20, 100, 500), seed=args.seed), args.samples, args.highs_samples, args.seed)


if __name__ == "__main__":
    main()
