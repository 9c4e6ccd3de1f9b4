"""Your own images: a folder of PNG/JPEG files is read as the generator draws images, inverted by
the app, and the reconstructions are written beside the files."""

import csv
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from torchvision.io import ImageReadMode, decode_image, write_jpeg, write_png

from ganinvert.app import invert
from ganinvert.app.images import image_files, read_images
from ganinvert.models.data import load_mnist

ROOT = Path(__file__).resolve().parents[2]


def _cfg(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="invert", overrides=overrides)


def _digits(n):
    x, _ = load_mnist(split="held_out")
    return (x[:n] * 255).round().to(torch.uint8)  # (n, 1, 28, 28), light strokes on dark


def test_a_wide_image_is_centre_cropped_and_dark_on_light_is_turned_around(tmp_path):
    d = _digits(1)[0]
    wide = torch.zeros(1, 28, 40, dtype=torch.uint8)
    wide[:, :, 6:34] = 255 - d  # the digit in the middle 28 columns, dark on light paper
    write_png(wide, str(tmp_path / "wide.png"))
    x = read_images(image_files(tmp_path), shape=(1, 28, 28), pixel_range=(-1.0, 1.0), invert_colors=True)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float64
    assert torch.allclose(x[0], d.double() / 255 * 2 - 1, atol=1e-12)  # no resize: the centre, exactly
    squashed = read_images(image_files(tmp_path), shape=(1, 28, 28), pixel_range=(0.0, 1.0), fit="resize",
                           invert_colors=True)
    assert not torch.allclose(squashed, x / 2 + 0.5, atol=0.05)  # squashing the 40 columns is another picture


def test_an_rgb_jpeg_is_read_grey_for_a_one_channel_generator(tmp_path):
    d = _digits(1)[0]
    write_jpeg(d.expand(3, 28, 28).contiguous(), str(tmp_path / "rgb.jpg"), quality=100)
    x = read_images(image_files(tmp_path), shape=(1, 28, 28), pixel_range=(0.0, 1.0))
    assert x.shape == (1, 1, 28, 28)
    assert (x[0] - d.double() / 255).abs().mean() < 0.02  # JPEG's rounding only


def test_the_app_inverts_a_folder_and_writes_the_reconstructions_beside_the_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    digits = _digits(3)
    for i, d in enumerate(digits):  # 56 x 56: twice the generator's size
        write_png(d.repeat_interleave(2, 1).repeat_interleave(2, 2).contiguous(), str(folder / f"digit{i}.png"))
    (folder / "notes.txt").write_text("not an image")
    cfg = _cfg(["model=mnist_mlp", "inverter=adam", "data=images", f"data.images.dir={folder}", "time_limit=3",
                "overwrite=true"])
    metrics = invert.run(cfg, tmp_path / "run")
    written = sorted(folder.glob("*.ganinvert-*"))
    assert [p.name for p in written] == [f"digit{i}.ganinvert-mnist_mlp-adam.png" for i in range(3)]
    for p, d in zip(written, digits):
        rec = decode_image(str(p), mode=ImageReadMode.UNCHANGED)
        assert rec.shape == (1, 28, 28) and rec.dtype == torch.uint8
        assert (rec.double() - d.double()).abs().mean() < 40  # a reconstruction of that digit, not of another
    assert metrics["results"]["images/adam"]["median_psnr"] > 12  # dB, against the files as read
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]["data"]["images"]["fit"] == "crop"
    with open(tmp_path / "run" / "samples.csv") as f:
        assert [Path(row["file"]).name for row in csv.DictReader(f)] == [f"digit{i}.png" for i in range(3)]
    invert.run(cfg, tmp_path / "again")  # the reconstructions are never read back as images
    assert len(sorted(folder.glob("*.ganinvert-*"))) == 3


def test_a_folder_without_images_and_a_conditional_model_without_a_label_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="no PNG or JPEG file in it"):
        invert.run(_cfg(["data=images", f"data.images.dir={tmp_path}"]), tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        invert.run(_cfg(["data=images", f"data.images.dir={tmp_path / 'missing'}"]), tmp_path / "run")
    write_png(_digits(1)[0].contiguous(), str(tmp_path / "d.png"))
    with pytest.raises(ValueError, match="data.images.label=<class>"):
        invert.run(_cfg(["model=cgan_mlp", "data=images", f"data.images.dir={tmp_path}"]), tmp_path / "run")
