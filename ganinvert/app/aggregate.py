"""A multirun directory of the invert app collected into one table and one plot: summary.csv
(one row per run, data set and method) and summary.png (y against x, one line per data/method),
written into the sweep directory (``scripts/aggregate.py`` is its command line)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _get(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def aggregate(sweep: str | Path, *, x: str = "model.latent_dim", y: str = "exact_rate") -> list[dict]:
    """Rows of the sweep, sorted by ``x``; also writes summary.csv and summary.png into ``sweep``."""
    sweep = Path(sweep)
    rows = []
    for path in sorted(sweep.glob("*/metrics.json")):
        m = json.loads(path.read_text())
        for key, s in m["results"].items():
            data, method = key.split("/")
            rows.append({"run": path.parent.name, "model": m["model"], x: _get(m["config"], x), "data": data,
                         "method": method, **{k: v for k, v in s.items() if not isinstance(v, dict)}})
    if not rows:
        raise FileNotFoundError(f"no */metrics.json under {sweep}: is it a multirun directory of scripts/invert.py?")
    rows.sort(key=lambda r: (r["data"], r["method"], r[x]))
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(sweep / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label in sorted({(r["data"], r["method"]) for r in rows}):
        pts = [(r[x], r[y]) for r in rows if (r["data"], r["method"]) == label]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label="/".join(label))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(sweep / "summary.png", dpi=100)
    plt.close(fig)
    return rows
