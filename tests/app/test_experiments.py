"""Every experiment of docs/reproduction.md, end to end at its smallest config: the command the
section names (scripts/invert.py +experiment=...) with the file's own ``smallest`` overrides,
then scripts/aggregate.py, which writes the tables and the plot; the numbers are checked against
what that config is known to give."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from ganinvert.models.reference import reference_path

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))

#: per experiment, (summary key in summary.csv's rows, method, the least value it must reach) at
#: its smallest config: far inside the regime where the paper's claim holds
KNOWN = {
    "expansion_threshold": ("exact_rate", "layerwise", 1.0),       # k = 10 on 250-600: always exact
    "noise": ("success@0.01", "linf", 0.75),                       # eps = 1e-3: error ~ eps
    "partial": ("solved_rate", "auto", 1.0),                       # 90% of 784 pixels for 20 latents
    "auto_shipped": ("exact_rate", "auto", 1.0),                   # the 20-60-784 VAE: layer-wise exact
    "pattern_threshold": ("exact_rate", "layerwise", 1.0),         # 500/300 > 1.5 on a wide 20 -> 300
}


def _spec(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "experiment" / f"{name}.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_the_smallest_config_runs_end_to_end_and_redraws_its_figure(name, tmp_path):
    spec = _spec(name)
    key, method, least = KNOWN[name]  # every experiment needs its known answer here
    if "paper_decoder" in _models(spec) and not reference_path().exists():
        pytest.skip(f"the paper's checkpoint is not at {reference_path()}")
    cmd = [sys.executable, str(ROOT / "scripts" / "invert.py"), f"+experiment={name}", *spec["smallest"],
           f"hydra.sweep.dir={tmp_path}", "threads=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    plot = tmp_path / "figure.png"
    agg = subprocess.run([sys.executable, str(ROOT / "scripts" / "aggregate.py"), str(tmp_path), "--plot", str(plot)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert agg.returncode == 0, agg.stderr[-3000:]
    runs = sorted(tmp_path.glob("*/metrics.json"))
    assert runs, "the sweep wrote no run"
    rows = [r for r in _csv(tmp_path / "summary.csv") if r["method"] == method]
    assert rows and all(float(r[key]) >= least for r in rows), [(r["model"], r[key]) for r in rows]
    table = (tmp_path / "summary.md").read_text()
    assert all(f"**{y}**" in table for y in spec["report"]["y"])
    with Image.open(plot) as im:  # one panel per reported figure
        assert im.size[0] >= 450 * len(spec["report"]["y"]) and im.size[1] > 300


def _models(spec: dict) -> set[str]:
    """The models the smallest config runs: its own ``model=``, else the sweep's, else the file's."""
    chosen = [o.split("=", 1)[1] for o in spec["smallest"] if o.startswith("model=")]
    swept = spec["hydra"]["sweeper"]["params"].get("model")
    default = next(d["override /model"] for d in spec["defaults"] if isinstance(d, dict) and "override /model" in d)
    return set(chosen or (swept.split(",") if swept else [default]))


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
