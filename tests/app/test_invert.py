"""The Hydra invert app: every config option composes and instantiates; run() writes sane files."""

import csv
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image

import ganinvert as gi
from ganinvert.app import aggregate, config, invert
from ganinvert.models.reference import reference_path

ROOT = Path(__file__).resolve().parents[2]

MODELS = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
INVERTERS = sorted(p.stem for p in (ROOT / "conf" / "inverter").glob("*.yaml"))


def _cfg(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="invert", overrides=overrides)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_option_composes_and_builds(model):
    cfg = _cfg([f"model={model}"])
    if cfg.model.kind == "reference" and not reference_path().exists():
        with pytest.raises(FileNotFoundError, match="GANINVERT_SHARED"):
            config.build_generator(cfg)
        return
    G, k, _, _ = config.build_generator(cfg)
    cond = torch.tensor([0]) if config.n_classes(cfg) else None  # a label-conditional one takes (z, labels)
    report = gi.inspect(G, latent_shape=(k,), cond=cond)
    assert report.not_converted == "" and report.in_shape == (k,)


@pytest.mark.parametrize("name", INVERTERS)
def test_every_inverter_option_instantiates(name):
    cfg = _cfg([f"inverter=[{name}]"])
    obj = instantiate(cfg.inverter[name])
    if name == "encoder":  # partial: the encoder comes from the model
        obj = obj(encoder=torch.nn.Linear(784, 20))
    assert isinstance(obj, gi.Inverter) and obj.name == name


def test_run_writes_the_four_files_with_sane_content(tmp_path):
    cfg = _cfg(["model=random_relu", "model.latent_dim=5", "model.widths=[20,60]", "data=[generated]",
                "data.generated.n=6", "inverter=[layerwise,adam]", "inverter.adam.steps=20", "show=3", "seed=3"])
    metrics = invert.run(cfg, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["results"]["generated/layerwise"]["exact_rate"] == 1.0
    assert saved["results"]["generated/layerwise"]["success@1e-05"] == 1.0
    assert saved["seed"] == 3 and saved["ganinvert"]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", saved["git_commit"])  # the code that ran, dirty or not
    assert metrics["results"].keys() == saved["results"].keys()
    rows = list(csv.DictReader(open(tmp_path / "samples.csv")))
    assert len(rows) == 6 * 2 and {r["method"] for r in rows} == {"layerwise", "adam"}
    assert all(r["status"] == "EXACT" for r in rows if r["method"] == "layerwise")
    with Image.open(tmp_path / "reconstructions.png") as im:
        assert im.size[0] > 100 and im.size[1] > 100
    lat = torch.load(tmp_path / "latents.pt", weights_only=True)
    torch.testing.assert_close(lat["z"]["generated/layerwise"], lat["z_star"]["generated"], rtol=0, atol=1e-8)
    # the same seed gives the same numbers
    again = invert.run(cfg, tmp_path / "again")

    def numbers(m):  # everything but wall-clock times; json makes nan comparable
        return json.dumps({k: {f: v for f, v in s.items() if f not in ("seconds", "ms_per_sample")}
                           for k, s in m["results"].items()}, sort_keys=True)

    assert numbers(again) == numbers(metrics)


def test_encoder_is_skipped_for_a_model_without_one(tmp_path):
    cfg = _cfg(["model=random_relu", "model.latent_dim=4", "model.widths=[16,48]", "data=[generated]",
                "data.generated.n=3", "inverter=[encoder,layerwise]"])
    assert set(invert.run(cfg, tmp_path)["results"]) == {"generated/layerwise"}


def test_sweep_is_aggregated_and_finished_runs_are_skipped(tmp_path):
    base = ["model=random_relu", "model.widths=[40,120]", "data=[generated]", "data.generated.n=8",
            "inverter=[layerwise]"]
    for i, k in enumerate((4, 8, 60)):  # k=60: the 60->40 layer contracts, nothing is EXACT
        invert.run(_cfg(base + [f"model.latent_dim={k}"]), tmp_path / str(i))
    stamp = (tmp_path / "0" / "metrics.json").stat().st_mtime_ns
    invert.run(_cfg(base + ["model.latent_dim=4"]), tmp_path / "0")  # resumed sweep: skipped
    assert (tmp_path / "0" / "metrics.json").stat().st_mtime_ns == stamp
    rows = aggregate.aggregate(tmp_path)
    assert [r["model.latent_dim"] for r in rows] == [4, 8, 60]
    assert [r["exact_rate"] for r in rows][:2] == [1.0, 1.0] and rows[2]["exact_rate"] == 0.0
    assert (tmp_path / "summary.csv").read_text().count("\n") == 4
    with Image.open(tmp_path / "summary.png") as im:
        assert im.size[0] > 100


def test_generated_observations_with_uniform_noise_and_a_random_mask():
    cfg = _cfg(["model=random_relu", "model.latent_dim=4", "model.widths=[10,50]", "data=[generated]",
                "data.generated.n=5", "data.generated.noise=0.01", "data.generated.noise_dist=uniform",
                "data.generated.observed=0.6"])
    G, k, rng, _ = config.build_generator(cfg)
    (x, z, mask, *_), = config.observations(cfg, G, k, rng).values()
    with torch.no_grad():
        e = x - G(z)
    assert e.abs().max() <= 0.01 and e.abs().max() > 0.009  # uniform on [-eps, eps]: reaches near eps
    assert mask.shape == x.shape and (mask.flatten(1).sum(1) == 30).all()  # 60% of 50
    assert (mask == mask[:1]).all()  # one set of pixels for the run, as in the paper's code
    with pytest.raises(ValueError, match="noise_dist='laplace'"):
        config.observations(_cfg(["data.generated.noise=0.1", "data.generated.noise_dist=laplace"]), G, k, rng)


def test_a_partly_observed_run_inverts_the_observed_pixels_and_scores_the_whole_image(tmp_path):
    cfg = _cfg(["model=random_relu", "model.latent_dim=5", "model.widths=[40,200]", "data=[generated]",
                "data.generated.n=4", "data.generated.observed=0.7", "inverter=[layerwise]", "show=2"])
    res = invert.run(cfg, tmp_path)["results"]["generated/layerwise"]
    assert res["exact_rate"] == 1.0 and res["median_output_rel_err"] < 1e-9  # hidden pixels filled in exactly


def test_a_bad_override_fails_in_hydra_not_in_our_code():
    from hydra.errors import ConfigCompositionException, MissingConfigException

    with pytest.raises((MissingConfigException, ConfigCompositionException), match="stylegan"):
        _cfg(["model=stylegan"])


@pytest.mark.parametrize("launcher,target", [("local", "JoblibLauncher"), ("slurm", "SlurmLauncher")])
def test_launcher_configs_compose_onto_the_plugins(launcher, target):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="invert", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)


@pytest.mark.slow  # two Hydra jobs in joblib subprocesses: 37 s (issue 17: long tests out of the default run)
def test_real_multirun_with_the_joblib_launcher_is_aggregated_and_resumes(tmp_path):
    """The sweep a user types: two jobs in parallel processes, then the aggregated table; typing
    it again (an interrupted sweep resumed) leaves the finished jobs untouched."""
    import subprocess

    cmd = [sys.executable, str(ROOT / "scripts" / "invert.py"), "-m", "hydra/launcher=local", "threads=1",
           "model=random_relu", "model.latent_dim=4,60", "model.widths=[40,120]", "data=[generated]",
           "data.generated.n=6", "inverter=[layerwise]", f"hydra.sweep.dir={tmp_path}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "launching 2 jobs" in done.stdout + done.stderr
    stamps = [(tmp_path / d / "metrics.json").stat().st_mtime_ns for d in ("0", "1")]
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert again.returncode == 0 and again.stdout.count("results in") == 2
    assert [(tmp_path / d / "metrics.json").stat().st_mtime_ns for d in ("0", "1")] == stamps
    rows = aggregate.aggregate(tmp_path)
    assert [(r["model.latent_dim"], r["exact_rate"]) for r in rows] == [(4, 1.0), (60, 0.0)]
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "summary.png").stat().st_size > 1000


def test_the_app_shows_the_progress_bar_on_stderr_and_passes_the_time_limit(tmp_path, capfd):
    cfg = _cfg(["model=random_relu", "model.latent_dim=5", "model.widths=[20,60]", "data=[generated]",
                "data.generated.n=4", "inverter=[layerwise]", "show=2", "progress=true", "time_limit=30"])
    invert.run(cfg, tmp_path)
    out, err = capfd.readouterr()
    assert "4/4" in err and "sample" in err and "sample" not in out
    rows = list(csv.DictReader(open(tmp_path / "samples.csv")))
    assert [r["status"] for r in rows] == ["EXACT"] * 4  # 30 s is plenty: no limit message
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["time_limit"] == 30


def test_the_main_job_compares_auto_with_adam_on_generated_and_real_digits_by_default(tmp_path):
    cfg = _cfg(["data.generated.n=2", "data.mnist.n=2", "inverter.adam.steps=5", "show=2"])  # only shrunk
    results = invert.run(cfg, tmp_path)["results"]
    assert set(results) == {"generated/auto", "generated/adam", "mnist/auto", "mnist/adam"}
    assert results["generated/auto"]["solved_rate"] == 1.0  # x = G(z*) on the shipped mnist_mlp


USER_GENERATOR = '''
import torch
from torch import nn


class UpsampleGenerator(nn.Module):
    def __init__(self, nz=6, c=4):
        super().__init__()
        self.nz, self.c = nz, c
        self.l1 = nn.Linear(nz, c * 4 * 4)
        self.conv = nn.Sequential(nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2), nn.Conv2d(c, c, 3, padding=1),
                                  nn.LeakyReLU(0.2), nn.Conv2d(c, 1, 3, padding=1), nn.Tanh())

    def forward(self, z):
        return self.conv(self.l1(z).view(-1, self.c, 4, 4))
'''


def test_a_users_generator_runs_from_its_class_and_state_dict_without_editing_the_package(tmp_path):
    (tmp_path / "my_gans.py").write_text(USER_GENERATOR)
    spec = importlib.util.spec_from_file_location("my_gans_here", tmp_path / "my_gans.py")  # the user's own copy
    mine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mine)
    torch.manual_seed(0)
    torch.save(mine.UpsampleGenerator(nz=6).state_dict(), tmp_path / "G.pt")
    cfg = _cfg(["model=user", "model.generator._target_=my_gans.UpsampleGenerator", "+model.generator.nz=6",
                f"model.weights={tmp_path / 'G.pt'}", "model.prefix=null", f"model.search_path={tmp_path}",
                "data=[generated,mnist]", "data.generated.n=3", "inverter=[auto]", "show=2"])
    metrics = invert.run(cfg, tmp_path / "run")
    assert list(metrics["results"]) == ["generated/auto"]  # 8x8 images: the MNIST digits do not apply
    assert metrics["results"]["generated/auto"]["success@1e-05"] == 1.0


def test_a_users_weights_that_are_not_there_say_what_was_expected(tmp_path):
    cfg = _cfg(["model=user", f"model.weights={tmp_path / 'missing.pt'}"])
    with pytest.raises(FileNotFoundError, match=r"missing.pt: no such file. Expected a state dict saved with"):
        config.build_generator(cfg)


def test_a_label_conditional_model_inverts_each_digit_under_its_label(tmp_path):
    cfg = _cfg(["model=cgan_mlp", "data=[generated,mnist]", "data.generated.n=4", "data.mnist.n=2", "inverter=[auto]",
                "show=2", "time_limit=30"])
    (x, _, _, y, _), _ = config.observations(cfg, *_built(cfg)).values()
    assert y.tolist() == [0, 1, 2, 3]  # generated digits under labels 0, 1, 2... in turn
    metrics = invert.run(cfg, tmp_path)
    assert metrics["results"]["generated/auto"]["exact_rate"] == 1.0  # certified under its label (cond=)
    assert set(metrics["results"]) == {"generated/auto", "mnist/auto"}


def _built(cfg):
    G, k, rng, _ = config.build_generator(cfg)
    return G, k, rng
