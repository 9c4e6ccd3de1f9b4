"""The compare app: the Lightning comparison over a data set, and the trainer/ config group."""

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir

from ganinvert.app import compare
from ganinvert.metrics import table

ROOT = Path(__file__).resolve().parents[2]

TRAINERS = sorted(p.stem for p in (ROOT / "conf" / "trainer").glob("*.yaml"))


def _cfg(overrides, name="compare"):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("app", ["compare", "train"])
def test_every_trainer_option_composes_and_builds_a_trainer(app, trainer, tmp_path):
    cfg = _cfg([f"trainer={trainer}"] + (["export_dir=" + str(tmp_path)] if app == "train" else []), name=app)
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    kw = dict(cfg.trainer)
    if kw.get("strategy") == "ddp":  # building (not launching) a 2-process CPU DDP trainer
        kw.update(accelerator="cpu", devices=2)
    t = L.Trainer(logger=False, default_root_dir=str(tmp_path), **kw)
    assert t.num_devices == kw["devices"]


def test_compare_runs_each_method_over_each_data_set(tmp_path):
    cfg = _cfg(["model=random_relu", "model.latent_dim=5", "model.widths=[20,60]", "data=[generated]",
                "data.generated.n=10", "inverter=[layerwise,adam,hybrid]", "inverter.adam.steps=20",
                "batch_size=4", "trainer.enable_progress_bar=false"])
    out = compare.run(cfg, tmp_path)
    saved = json.loads((tmp_path / "compare.json").read_text())
    res = saved["results"]["generated"]
    assert res["layerwise/exact_rate"] == 1.0 and res["hybrid/exact_rate"] == 1.0
    assert res["adam/success@1e-05"] == 0.0 and saved["world_size"] == 1
    assert out["results"].keys() == saved["results"].keys()
    rows = list(csv.DictReader(open(tmp_path / "samples.csv")))
    assert len(rows) == 10 * 3 and {r["method"] for r in rows} == {"layerwise", "adam", "hybrid"}
    assert (tmp_path / "logs" / "version_0" / "metrics.csv").exists()
    assert "generated/layerwise" in table(compare.summaries(out))


@pytest.mark.slow
def test_two_process_ddp_summary_equals_the_single_process_one(tmp_path):
    """DDP on 2 CPU processes: 9 samples split 5 + 5 (DistributedSampler repeats one), gathered
    back, the repeat dropped: every logged summary equals the single-process run's. The 12 -> 20
    first layer expands too little to certify every sample, so the rates are not all 0 or 1; the
    layer-wise method's answer per sample does not depend on the batch it came in (Adam's random
    starts would)."""
    import subprocess
    import sys

    base = [sys.executable, str(ROOT / "scripts" / "compare.py"), "model=random_relu", "model.latent_dim=12",
            "model.widths=[20,60]", "data=[generated]", "data.generated.n=9", "inverter=[layerwise]",
            "batch_size=4", "trainer.enable_progress_bar=false"]
    runs = {}
    for label, extra in (("one", ["trainer=cpu"]), ("ddp", ["trainer=ddp", "trainer.accelerator=cpu",
                                                             "trainer.devices=2"])):
        out = tmp_path / label
        done = subprocess.run(base + extra + [f"hydra.run.dir={out}"], capture_output=True, text=True,
                              cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[label] = json.loads((out / "compare.json").read_text())
    assert runs["ddp"]["world_size"] == 2
    one, ddp = runs["one"]["results"]["generated"], runs["ddp"]["results"]["generated"]
    assert ddp["layerwise/samples"] == 9 and ddp.keys() == one.keys()
    assert 0 < one["layerwise/exact_rate"] < 1
    for key, v in one.items():
        if not key.endswith(("seconds", "ms_per_sample")):
            assert ddp[key] == pytest.approx(v, rel=1e-6, abs=1e-12, nan_ok=True), key
