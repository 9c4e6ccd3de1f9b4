"""Fuzzing ``invert``'s boundary: random shapes, dtypes, NaN/Inf patterns, masks, measurement
matrices and option values. A call either raises one of our typed errors (a bad call) or returns
a result in which every bad sample is INVALID and every other sample has the status it gets when
inverted without the bad ones beside it. Any other exception is a bug. Every method also meets
short time limits, with the progress bar on, on generators of several kinds: each returns, and
the samples the limit left open say so."""

from __future__ import annotations

import pytest
import torch
from hypothesis import event, given, note
from hypothesis import strategies as st

import ganinvert as gi
from ganinvert.result import Status

from .conftest import DCGANish, latents, random_mlp

K, N = 3, 24  # latent and output size of the fuzzed generator: 3 -> 10 -> 24, ReLU
GEN = random_mlp([K, 10, N], seed=5)
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.bool, torch.complex64]
BAD = [float("nan"), float("inf"), -float("inf")]


#: option values, the valid ones first: a "sane" call draws from those only (half the calls, so
#: that the per-sample promises get exercised, not just the validation)
OPTIONS = {"method": (["auto", "layerwise", "noisy", "adam", "gd", "hybrid"], ["encoder", "lstsq", "", None]),
           "rtol": ([None, 1e-6, 1e-3], [0.0, -1.0, 1.5, float("nan")]),
           "seed": ([0, 7, 2**40], [-1, 1.5, "a"]),
           "time_limit": ([None, 30.0, 0.05], [0.0, -1.0, float("nan")]),
           "progress": ([None, True, False], ["yes", 1]),
           "norm": ([None], ["linf", "l1", "l2", "l3"]),
           "noise": ([None], [1e-3, 0.0, -1.0, float("nan")]),
           "latent_shape": ([None, (K,)], [(K + 1,), (-1,), "3"])}


@st.composite
def calls(draw):
    """``(x, kwargs)``: observations (some samples with NaN/Inf pixels) and options, masks and
    measurements by name (:func:`_materialise` makes them tensors)."""
    sane = draw(st.booleans())
    B = draw(st.integers(1, 4))
    z = torch.randn(B, K, generator=torch.Generator().manual_seed(draw(st.integers(0, 999))), dtype=torch.float64)
    with torch.no_grad():
        x = GEN(z)
    for i in range(B):
        if draw(st.integers(0, 3)) == 0:  # about a quarter of the samples get NaN/Inf pixels
            idx = draw(st.lists(st.integers(0, N - 1), min_size=1, max_size=4, unique=True))
            x[i, idx] = draw(st.sampled_from(BAD))
    shape = draw(st.sampled_from(["batched", "single"] + ([] if sane else ["flat-wrong", "extra-dim"])))
    if shape == "single":
        x = x[0]
    elif shape == "flat-wrong":
        x = x[:, : N - 1]
    elif shape == "extra-dim":
        x = x[:, None, :]
    x = x.to(draw(st.sampled_from(DTYPES[:2] if sane else DTYPES)))
    kw = {}
    if draw(st.booleans()):
        kw["mask"] = draw(st.sampled_from(["shared", "per-sample", "one-empty"]
                                          + ([] if sane else ["float", "wrong-shape"])))
    if draw(st.integers(0, 4)) == 0:
        kw["measurement"] = draw(st.sampled_from(["dense"] + ([] if sane else ["wrong-shape", "nan"])))
    for name, (good, bad) in OPTIONS.items():
        if draw(st.integers(0, 3)) == 0:  # each option: usually left at its default
            kw[name] = draw(st.sampled_from(good if sane else good + bad))
    return x, kw


def _materialise(x: torch.Tensor, kw: dict, seed: int = 0) -> dict:
    """Masks and measurement matrices drawn by name become tensors shaped for ``x``."""
    kw, g = dict(kw), torch.Generator().manual_seed(seed)
    B = x.shape[0] if x.dim() > 1 else 1
    m = kw.get("mask")
    if m is not None:
        full = torch.rand(B, N, generator=g) < 0.8
        full[:, 0] = True
        kw["mask"] = {"shared": full[0], "per-sample": full if x.dim() > 1 else full[0], "float": full[0].double(),
                      "wrong-shape": full[0, :-1], "one-empty": full.index_fill(0, torch.tensor([B - 1]), False)}[m]
    M = kw.get("measurement")
    if M is not None:
        dense = torch.randn(N, N, generator=g, dtype=torch.float64)  # x (B, N) fits it: x = M G(z) for some z
        kw["measurement"] = {"dense": dense, "wrong-shape": dense[:, :-1],
                             "nan": dense.index_fill(0, torch.tensor([0]), float("nan"))}[M]
    return kw


@given(call=calls())
def test_invert_raises_only_typed_errors_and_bad_samples_cost_nobody(call):
    x, kw = call
    kw = _materialise(x, kw)
    note(f"x {tuple(x.shape)} {x.dtype}, options { {k: (v if not torch.is_tensor(v) else tuple(v.shape)) for k, v in kw.items()} }")
    kw.setdefault("time_limit", 60.0)
    try:
        r = gi.invert(GEN, x, **kw)
    except gi.GanInvertError as e:  # a bad call: typed, and it says what was expected
        event(f"raised {type(e).__name__}")
        assert "Expected" in str(e) or "expected" in str(e), str(e)
        return
    event("returned")
    xb = x if x.dim() > 1 else x[None]
    observed = torch.ones(xb.shape[0], N, dtype=torch.bool)
    if torch.is_tensor(kw.get("mask")):
        observed = kw["mask"].expand(xb.shape[0], N)
    broken = (~torch.isfinite(xb.double()) & observed).any(1)  # NaN/Inf where a pixel is observed
    for i in broken.nonzero().flatten().tolist():
        assert r.status[i] is Status.INVALID, (i, r.status[i], r.messages[i])
    # the other samples get what they get without the bad ones beside them (INVALID only if so alone)
    good = (~broken).nonzero().flatten().tolist()
    if kw["time_limit"] is not None and kw["time_limit"] < 1:  # how far a call got is the clock's doing
        return
    if good and len(good) < len(r.status):
        sub = dict(kw)
        if torch.is_tensor(sub.get("mask")) and sub["mask"].dim() == 2:
            sub["mask"] = sub["mask"][good]
        alone = gi.invert(GEN, xb[good], **sub)
        assert [r.status[i] for i in good] == alone.status


def _generators():
    """``name -> (G, x, encoder)``: a generator of each kind, observations of it (3 samples) and its
    encoder (None: it has none)."""
    from ganinvert import models
    vae = models.load("vae_leaky_20_200_500_784")
    G = vae.generator.double()
    x = G(latents(3, 20, seed=3)).detach()  # (3, 1, 28, 28)
    noise = 1e-3 * (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64) - 1)
    out = {"shipped vae, noisy": (G, x + noise, vae.encoder)}
    conv = DCGANish(nz=8).double().eval()
    out["conv, tanh output"] = (conv, conv(latents(3, 8, seed=5)).detach(), None)
    relu = random_mlp([5, 30, 120], seed=6)
    out["relu mlp"] = (relu, relu(latents(3, 5, seed=7)).detach(), None)
    tanh = random_mlp([4, 20, 60], act="tanh", out_act="tanh", seed=8)
    out["tanh hidden"] = (tanh, tanh(latents(3, 4, seed=9)).detach(), None)
    torch.manual_seed(10)
    up = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Unflatten(1, (4, 2, 2)),  # a black box: SiLU
                             torch.nn.Upsample(scale_factor=2), torch.nn.Conv2d(4, 2, 3, padding=1),
                             torch.nn.SiLU(), torch.nn.Conv2d(2, 2, 1), torch.nn.Tanh()).double().eval()
    out["silu, black box"] = (up, up(latents(3, 5, seed=10)).detach(), None)
    return out


GENERATORS = _generators()
CASES = [(m, g) for m in sorted(gi.INVERTERS) for g in sorted(GENERATORS)] + [("encoder", "shipped vae, noisy")]


@pytest.mark.parametrize("limit", [1e-6, 0.05])
@pytest.mark.parametrize("method, name", CASES)
def test_every_method_meets_a_short_time_limit_with_the_progress_bar_on(method, name, limit, capfd):
    G, x, encoder = GENERATORS[name]
    inverter = gi.Encoder(encoder=encoder.double()) if method == "encoder" else method
    try:
        r = gi.invert(G, x, method=inverter, time_limit=limit, progress=True)
    except gi.GanInvertError as e:  # a method that does not apply to this generator says so, typed
        assert "Expected" in str(e) or "expected" in str(e), str(e)
        return
    out, err = capfd.readouterr()
    assert out == "" and "3/3" in err  # the bar ends full, on stderr
    assert len(r.status) == 3 and r.z.shape[0] == 3 and torch.isfinite(r.z).all()
    for i, s in enumerate(r.status):  # expired before any loop ran (the encoder has none: one pass)
        if limit == 1e-6 and s is Status.APPROXIMATE and method != "encoder":
            assert r.messages[i].startswith("stopped by time_limit=1e-06s during "), r.messages[i]
