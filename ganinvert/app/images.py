"""Your own images (``data=images data.images.dir=PATH``): a folder of PNG/JPEG files read with
torchvision's decoders, converted to what the generator draws, and the reconstructions written
back beside them (or into ``data.images.out``).

The conversion, stated in the run's log and in ``metrics.json``'s config:

- channels: decoded as grey (``ImageReadMode.GRAY``) for a 1-channel generator, RGB for a
  3-channel one;
- size: ``fit: crop`` (default) resizes the shorter side to the generator's and cuts the centre
  (the aspect ratio kept, the borders lost); ``fit: resize`` squashes the whole image to its size
  (nothing lost, the aspect ratio not kept). Both antialiased bilinear;
- pixel range: 0..255 mapped linearly onto the generator's range (``[0, 1]`` or ``[-1, 1]``);
  ``invert_colors: true`` first turns dark-on-light into light-on-dark, as MNIST digits are.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image, write_png
from torchvision.transforms.v2 import functional as TF

log = logging.getLogger(__name__)

#: the files read: torchvision decodes these
SUFFIXES = (".png", ".jpg", ".jpeg")
#: a reconstruction's name holds this, so that a second run never reads it as an input
MARK = ".ganinvert-"
FITS = ("crop", "resize")


def image_files(folder: str | Path) -> list[Path]:
    """The PNG/JPEG files directly in ``folder``, sorted by name, reconstructions left out."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"data.images.dir={folder}: no such folder. Expected a folder of PNG or JPEG files")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and MARK not in p.name)
    if not files:
        raise FileNotFoundError(f"data.images.dir={folder}: no PNG or JPEG file in it (looked for "
                                f"{', '.join(SUFFIXES)}, not in subfolders)")
    return files


def read_images(files: list[Path], *, shape: tuple[int, int, int], pixel_range: tuple[float, float],
                fit: str = "crop", invert_colors: bool = False) -> torch.Tensor:
    """``(N, C, H, W)`` float64 in ``pixel_range`` for the generator's ``shape`` ``(C, H, W)``."""
    C, H, W = shape
    lo, hi = pixel_range
    if C not in (1, 3):
        raise ValueError(f"the generator draws {C}-channel images; Expected 1 (grey) or 3 (RGB) to read files into")
    if fit not in FITS:
        raise ValueError(f"data.images.fit={fit!r}: Expected one of {FITS}")
    if not (torch.isfinite(torch.tensor([lo, hi])).all() and hi > lo):
        raise ValueError(f"the generator's pixel range is {pixel_range}: Expected a bounded one to map 0..255 onto "
                         "(set model.pixel_range)")
    mode = ImageReadMode.GRAY if C == 1 else ImageReadMode.RGB
    out = []
    for path in files:
        img = decode_image(str(path), mode=mode).to(torch.float64) / 255.0
        if fit == "crop":
            img = TF.center_crop(TF.resize(img, [min(H, W)], antialias=True), [H, W])
        else:
            img = TF.resize(img, [H, W], antialias=True)
        img = img.clamp(0, 1)
        out.append(1 - img if invert_colors else img)
    log.info("read %d images: %s to %dx%d (%s), %s, 0..255 -> [%g, %g]%s", len(files), "grey" if C == 1 else "RGB",
             H, W, "shorter side resized, centre cropped" if fit == "crop" else "resized, aspect not kept",
             mode.name, lo, hi, ", colours inverted" if invert_colors else "")
    return lo + (hi - lo) * torch.stack(out)


def write_reconstructions(x_hat: torch.Tensor, files: list[Path], *, pixel_range: tuple[float, float],
                          tag: str, out: str | Path | None = None, invert_colors: bool = False) -> list[Path]:
    """Each reconstruction as ``<name>.ganinvert-<tag>.png`` beside its image (or in ``out``),
    the generator's pixel range mapped back onto 0..255 (and its colours inverted back where the
    images' were on reading)."""
    lo, hi = pixel_range
    written = []
    for img, path in zip(x_hat.detach().cpu().to(torch.float64), files, strict=True):
        folder = Path(out).expanduser() if out else path.parent
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{path.stem}{MARK}{tag}.png"
        v = ((img - lo) / (hi - lo)).clamp(0, 1)
        write_png((1 - v if invert_colors else v).mul(255).round().to(torch.uint8), str(target))
        written.append(target)
    return written
