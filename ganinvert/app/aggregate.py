"""A multirun directory of the invert app collected into tables and one plot: summary.csv (one
row per run, data set and method), summary.md (per figure, a table of it against the swept value:
what docs/reproduction.md shows) and summary.png (one panel per figure, one line per
[model/][data/]method), written into the sweep directory (``scripts/aggregate.py`` is its command
line).

What to plot comes from the arguments or else from the sweep's own config: an experiment file
(``conf/experiment/``) names it under ``report`` (``x``, ``y``, ``logx``, ``logy``, ``plot``), so
``python scripts/aggregate.py multirun/<experiment>`` alone redraws that experiment's figure."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

#: what is plotted when neither the arguments nor the sweep's config say
DEFAULT_REPORT = {"x": "model.latent_dim", "y": ["exact_rate"], "logx": False, "logy": False, "plot": None}
STYLES = ("-", "--", ":", "-.")


def _get(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def aggregate(sweep: str | Path, *, x: str | None = None, y: str | list[str] | None = None,
              logx: bool | None = None, logy: bool | None = None, plot: str | Path | None = None) -> list[dict]:
    """Rows of the sweep, sorted by ``x``; also writes summary.csv, summary.md and summary.png into
    ``sweep`` (and a copy of the png to ``plot``). Options left None come from the sweep config's
    ``report`` (an experiment file's), then :data:`DEFAULT_REPORT`."""
    sweep = Path(sweep)
    paths = sorted(sweep.glob("*/metrics.json"))
    runs = {p.parent.name: json.loads(p.read_text()) for p in paths}
    if not runs:
        raise FileNotFoundError(f"Expected: a sweep directory holding one <job>/metrics.json per job (what "
                                f"the invert app, ganinvert.app.invert.run, writes), Got: none under {sweep}")
    given = {"x": x, "y": [y] if isinstance(y, str) else y, "logx": logx, "logy": logy, "plot": plot}
    report = {**DEFAULT_REPORT, **(runs[paths[0].parent.name]["config"].get("report") or {})}
    report.update({k: v for k, v in given.items() if v is not None})
    x, ys = report["x"], [report["y"]] if isinstance(report["y"], str) else list(report["y"])
    rows = [{"run": run, "model": m["model"], x: _get(m["config"], x), "data": data, "method": method,
             **{k: v for k, v in s.items() if not isinstance(v, dict)}}
            for run, m in runs.items() for (data, method), s in ((key.split("/", 1), s) for key, s in m["results"].items())]
    if any(r[x] is None for r in rows):
        raise ValueError(f"x={x!r} is not a key of the runs' configs (metrics.json 'config'); pass --x with a "
                         "swept key, e.g. model.latent_dim")
    missing = [key for key in ys if all(key not in r for r in rows)]
    if missing:
        raise ValueError(f"y={missing} are not summary figures of these runs; they have {sorted(rows[0])}")
    rows.sort(key=lambda r: (r["model"], r["data"], r["method"], r[x]))
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(sweep / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    varies = [key for key in ("model", "data") if len({r[key] for r in rows}) > 1 and x != f"{key}.name"]

    def label(r: dict) -> str:  # the method, after the model and data set where those vary
        return "/".join([r[key] for key in varies] + [r["method"]])

    labels = list(dict.fromkeys(label(r) for r in rows))
    seen = {}
    for r in rows:  # one value per line and x: two runs at one point (a swept seed, say) would overwrite
        if seen.setdefault((label(r), r[x]), r["run"]) != r["run"]:
            raise ValueError(f"runs {seen[(label(r), r[x])]} and {r['run']} both give {label(r)} at {x}={r[x]}: "
                             "sweep one key at a time, or aggregate the runs separately")
    categorical = isinstance(rows[0][x], str)  # e.g. model.name: grouped bars in run order, not lines
    xs = list(dict.fromkeys(r[x] for r in rows)) if categorical else sorted({r[x] for r in rows})
    methods, models = list(dict.fromkeys(r["method"] for r in rows)), list(dict.fromkeys(r["model"] for r in rows))
    (sweep / "summary.md").write_text("\n".join(_table(rows, x, key, labels, label, xs) for key in ys))
    fig, axes = plt.subplots(1, len(ys), figsize=(5.2 * len(ys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], ys, strict=True):
        for j, name in enumerate(labels):  # a colour per method, a line style per model
            pts = {r[x]: r.get(key, math.nan) for r in rows if label(r) == name}
            first = next(r for r in rows if label(r) == name)
            color = f"C{methods.index(first['method']) % 10}"
            if categorical:
                width = 0.8 / len(labels)
                ax.bar([i + (j - (len(labels) - 1) / 2) * width for i in range(len(xs))],
                       [pts.get(v, math.nan) for v in xs], width, label=name, color=color)
            else:
                ax.plot(list(pts), list(pts.values()), marker="o", label=name, color=color,
                        linestyle=STYLES[models.index(first["model"]) % len(STYLES)] if "model" in varies else "-")
        if categorical:
            ax.set_xticks(range(len(xs)), xs, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel(x)
        ax.set_ylabel(key)
        if report["logx"]:
            ax.set_xscale("log")
        if report["logy"]:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(sweep / "summary.png", dpi=100)
    plt.close(fig)
    if report["plot"]:
        Path(report["plot"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sweep / "summary.png", report["plot"])
    return rows


def _table(rows: list[dict], x: str, key: str, labels: list[str], label, xs: list) -> str:
    """A markdown table of ``key``: one row per value ``xs`` of ``x``, one column per line of the plot."""
    cell = {(label(r), r[x]): r.get(key, math.nan) for r in rows}
    out = [f"**{key}**", "", f"| {x} | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for v in xs:
        out.append(f"| {v} | " + " | ".join(_fmt(cell.get((name, v), math.nan)) for name in labels) + " |")
    return "\n".join(out) + "\n"


def _fmt(v) -> str:
    if not isinstance(v, (int, float)) or math.isnan(v):
        return "-"
    return f"{v:.3g}" if abs(v) >= 1e-2 or v == 0 else f"{v:.1e}"
