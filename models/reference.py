"""The paper's published decoder (Lei et al. 2019, ``../shared/reference_nets``): the one
place that knows its state-dict keys."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .registry import read_tensor_dict


#: the checkpoint's file name inside ``reference_nets/``
CHECKPOINT = "trained_vae_20_60_784_nobias.pth"


def reference_path() -> Path:
    """Where the paper's checkpoint is looked for: ``$GANINVERT_SHARED/reference_nets``, then
    ``shared/`` inside this checkout, then ``../shared`` beside it; the last candidate when none
    exists (callers check ``.exists()`` and skip). It is never copied into the project."""
    root = Path(__file__).resolve().parents[1]
    dirs = [Path(p) for p in [os.environ.get("GANINVERT_SHARED", "")] if p] + [root / "shared", root.parent / "shared"]
    return next((d / "reference_nets" / CHECKPOINT for d in dirs if (d / "reference_nets").is_dir()),
                dirs[-1] / "reference_nets" / CHECKPOINT)


def paper_decoder(path: str | Path, *, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """The trained MNIST decoder of Lei et al. (2019), ``x = ReLU(W4 ReLU(W3 z))``, 20-60-784,
    from their published state dict (keys ``fc3.weight``, ``fc4.weight``)."""
    sd = read_tensor_dict(Path(path))
    missing = {"fc3.weight", "fc4.weight"} - set(sd)
    if missing:
        raise KeyError(f"{path} lacks {sorted(missing)}; Expected the paper's VAE state dict")
    dec = nn.Sequential(nn.utils.skip_init(nn.Linear, 20, 60, bias=False), nn.ReLU(),
                        nn.utils.skip_init(nn.Linear, 60, 784, bias=False), nn.ReLU())
    with torch.no_grad():
        dec[0].weight.copy_(sd["fc3.weight"])
        dec[2].weight.copy_(sd["fc4.weight"])
    return dec.to(dtype).eval()
