"""Collect a multirun directory of scripts/invert.py into one table and one plot.

    python scripts/aggregate.py multirun/invert/2026-11-24_05-10-22 [--x model.latent_dim] [--y exact_rate]

Writes summary.csv (one row per run, data set and method) and summary.png (y against x, one
line per data/method) into the sweep directory (:func:`ganinvert.app.aggregate.aggregate`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ganinvert.app.aggregate import aggregate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep")
    ap.add_argument("--x", default="model.latent_dim")
    ap.add_argument("--y", default="exact_rate")
    args = ap.parse_args()
    rows = aggregate(args.sweep, x=args.x, y=args.y)
    print(f"{len(rows)} rows -> {Path(args.sweep) / 'summary.csv'}, {Path(args.sweep) / 'summary.png'}")


if __name__ == "__main__":
    main()
