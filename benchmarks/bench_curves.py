"""PSNR against wall time on real digits (issue 26): what each method gives a user who stops it at
a budget. Per shipped generator, 16 real held-out digits (evenly spread over the 1,000, every
class), float64, 2 threads: Adam with its defaults (1000 steps, lr 0.05, 1 restart) is timed
first; then every method runs again on the same digits with ``time_limit`` at each multiple of
that time, and the median PSNR it returned is one point of its curve:

  default   ganinvert.invert(G, x, time_limit=t)
  adam      Adam, 1 restart, run until the limit
  adam x4   Adam, 4 restarts, run until the limit
  L-BFGS    one Adam step, then L-BFGS until the limit

Prints one row per (generator, method) and writes the figure (``--out``, default
docs/psnr_time.png): median PSNR against time as a multiple of Adam's, one panel per generator.

    python benchmarks/bench_curves.py [--models dcgan mnist_mlp ...] [--samples 16] [--budgets 0.5 1 2 4 10]
        [--methods default adam ...] [--out docs/psnr_time.png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib
import torch

import ganinvert as gi
from ganinvert import models
from ganinvert.metrics import sample_metrics
from ganinvert.models.data import load_mnist

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METHODS = {
    "default": lambda: "auto",
    "adam": lambda: gi.Adam(steps=10**6, lr=0.05, restarts=1, seed=0),
    "adam x4": lambda: gi.Adam(steps=10**6, lr=0.05, restarts=4, seed=0),
    "L-BFGS": lambda: gi.Adam(steps=1, lr=0.05, restarts=1, polish=10**6, seed=0),
}


def median_psnr(r: gi.InversionResult, x: torch.Tensor, span: float) -> float:
    return sample_metrics(r, x, data_range=span)["psnr"].median().item()


def digits(m, n: int) -> torch.Tensor:
    x, _ = load_mnist(split="held_out", pixel_range="unit" if m.pixel_range[0] == 0 else "tanh")
    return x[torch.linspace(0, len(x) - 1, n).long()].double()


def curves(name: str, n: int, budgets: list[float],
           methods: list[str]) -> tuple[float, float, dict[str, list[tuple[float, float]]]]:
    """Adam's own time and PSNR, and per method ``[(seconds, median PSNR)]`` at each budget."""
    m = models.load(name)
    chain = gi.to_chain(m.generator.double(), latent_shape=(m.latent_dim,))
    x, span = digits(m, n), m.pixel_range[1] - m.pixel_range[0]
    t0 = time.perf_counter()
    r = gi.invert(chain, x, method=gi.Adam(steps=1000, lr=0.05, restarts=1, seed=0))
    t_adam, p_adam = time.perf_counter() - t0, median_psnr(r, x, span)
    out = {}
    for label in methods:
        method = METHODS[label]
        points = []
        for b in budgets:
            t0 = time.perf_counter()
            r = gi.invert(chain, x, method=method(), time_limit=b * t_adam)
            points.append((time.perf_counter() - t0, median_psnr(r, x, span)))
        out[label] = points
        print(f"{name:26s} {label:8s} " + "  ".join(f"{b:g}x: {p:5.2f} dB ({t / t_adam:4.2f}x)"
                                                   for b, (t, p) in zip(budgets, points)), flush=True)
    return t_adam, p_adam, out


def figure(results: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False)
    for ax, (name, (t_adam, p_adam, out)) in zip(axes[0], results.items()):
        for label, points in out.items():
            ax.plot([t / t_adam for t, _ in points], [p for _, p in points], marker="o", label=label)
        ax.axhline(p_adam, color="gray", linestyle=":", label="Adam, 1000 steps")
        ax.axvline(1.0, color="gray", linewidth=0.5)
        ax.set_xscale("log")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel(f"wall time / Adam's ({t_adam:.1f} s)")
        ax.set_title(name, fontsize=9)
    axes[0][0].set_ylabel("median PSNR of real digits (dB)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["dcgan", "mnist_mlp", "vae_leaky_20_200_500_784", "mlp_gan"])
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.5, 1, 2, 4, 10])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "psnr_time.png")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64, {args.samples} real held-out digits")
    results = {}
    for name in args.models:
        results[name] = curves(name, args.samples, args.budgets, args.methods)
        t_adam, p_adam, _ = results[name]
        print(f"{name:26s} adam (1000 steps): {p_adam:5.2f} dB in {t_adam:.2f} s", flush=True)
    figure(results, args.out)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
