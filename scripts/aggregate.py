"""Collect a multirun directory of scripts/invert.py into tables and one plot.

    python scripts/aggregate.py multirun/expansion_threshold        # what the experiment file's `report` names
    python scripts/aggregate.py multirun/latent --x model.latent_dim --y exact_rate,success@0.001 [--logx] [--logy]

Writes summary.csv (one row per run, data set and method), summary.md (a table per figure) and
summary.png (one panel per figure) into the sweep directory, and copies the png to --plot
(:func:`ganinvert.app.aggregate.aggregate`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ganinvert.app.aggregate import aggregate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep")
    ap.add_argument("--x", help="the swept config key (default: the experiment's report.x, else model.latent_dim)")
    ap.add_argument("--y", help="comma-separated summary figures, one panel each (default: report.y, else exact_rate)")
    ap.add_argument("--logx", action="store_true", default=None)
    ap.add_argument("--logy", action="store_true", default=None)
    ap.add_argument("--plot", help="also copy summary.png here (default: report.plot)")
    args = ap.parse_args()
    rows = aggregate(args.sweep, x=args.x, y=args.y.split(",") if args.y else None, logx=args.logx,
                     logy=args.logy, plot=args.plot)
    sweep = Path(args.sweep)
    print(f"{len(rows)} rows -> {sweep / 'summary.csv'}, {sweep / 'summary.md'}, {sweep / 'summary.png'}")
    print((sweep / "summary.md").read_text())


if __name__ == "__main__":
    main()
