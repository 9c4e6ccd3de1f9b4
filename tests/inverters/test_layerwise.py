"""Known answers: x = G(z*) for random expanding chains, recovered exactly and certified."""

import pytest
import torch

import ganinvert as gi
from ganinvert import Status
from ganinvert.inverters import Layerwise

from ..conftest import DCGANish, latents, random_mlp, rel_err

TOL = {torch.float64: 1e-6, torch.float32: 1e-3}


@pytest.mark.parametrize("act,out_act", [("relu", None), ("leaky", None), ("relu", "tanh"),
                                         ("relu", "sigmoid"), ("leaky", "tanh")])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_exact_recovery_of_expanding_chains(act, out_act, bias, dtype):
    G = random_mlp((10, 40, 160), act=act, out_act=out_act, bias=bias, dtype=dtype)
    z = latents(64, 10, dtype=dtype)
    with torch.no_grad():
        x = G(z)
    r = gi.invert(G, x, method="layerwise")
    assert r.z.dtype == dtype and r.x_hat.dtype == dtype
    assert all(s is Status.EXACT for s in r.status), r.counts()
    assert rel_err(r.z, z).max() < TOL[dtype]


def test_unbatched_observation_gives_unbatched_result():
    G = random_mlp((8, 40, 120))
    z = latents(1, 8)[0]
    r = gi.invert(G, G(z).detach(), method="layerwise")
    assert r.z.shape == (8,) and r.x_hat.shape == (120,) and not r.batched
    assert r.status == [Status.EXACT]
    assert (r.z - z).abs().max() < 1e-10


def test_relu_20_100_500_exact_on_999_of_1000():
    G = random_mlp((20, 100, 500), seed=3)
    z = latents(1000, 20, seed=4)
    r = gi.invert(G, G(z).detach(), method="layerwise")
    exact = r.exact
    assert exact.float().mean() >= 0.999, r.counts()
    assert rel_err(r.z, z)[exact].max() <= 1e-6


@pytest.mark.parametrize("k", [10, 30])
def test_leaky_relu_exact_for_every_k_up_to_n1(k):
    G = random_mlp((k, 30, 60), act="leaky", seed=k)
    z = latents(100, k)
    r = gi.invert(G, G(z).detach(), method="layerwise")
    assert r.exact.all(), r.counts()
    assert rel_err(r.z, z).max() <= 1e-6


def test_dcgan_conv_transpose_batchnorm_generator_is_inverted_exactly():
    G = DCGANish(nz=8).double().eval()
    z = latents(16, 8).view(16, 8, 1, 1)
    r = gi.invert(G, G(z).detach(), method="layerwise")
    assert r.z.shape == (16, 8, 1, 1)
    assert r.exact.all(), (r.counts(), r.messages[:3])
    assert rel_err(r.z, z).max() < 1e-6


def test_non_point_preimages_are_never_marked_exact():
    # a contracting middle layer: 20 -> 15 loses information, many samples have a whole
    # polyhedron of pre-images, and the layer-wise pass cannot know which point is z*
    G = random_mlp((20, 15, 200), seed=5)
    z = latents(200, 20)
    r = gi.invert(G, G(z).detach(), method="layerwise")
    err = rel_err(r.z, z)
    assert not r.exact.any()  # a 15-dim bottleneck can never certify a 20-dim latent
    assert r.solved.all()  # but every sample has G(z) = x
    assert all("not certified" in m for m, s in zip(r.messages, r.status) if s is Status.EXACT_NONUNIQUE)
    assert (err > 1e-3).any()  # and indeed z differs from z* for some


def test_highs_reference_solver_gives_the_same_answer_as_the_ipm():
    G = random_mlp((10, 25, 80), seed=6)  # n/k = 2.5 per layer: the LP is needed for some
    z = latents(24, 10)
    x = G(z).detach()
    a = gi.invert(G, x, method=gi.Layerwise(solver="highs"))
    b = gi.invert(G, x, method=gi.Layerwise(solver="ipm"))
    assert [s.name for s in a.status] == [s.name for s in b.status]
    both = a.exact & b.exact
    assert both.any()
    assert (a.z[both] - b.z[both]).abs().max() < 1e-8


def test_lp_only_mode_matches_fast_path_results():
    G = random_mlp((10, 40, 160), seed=7)
    z = latents(16, 10)
    r = gi.invert(G, G(z).detach(), method=gi.Layerwise(fast_path=False))
    assert all(m == "ipm/ipm" for m in r.methods)
    assert r.exact.all() and rel_err(r.z, z).max() < 1e-6


def test_conv_layers_over_the_dense_limit_raise_with_a_hint():
    G = DCGANish(nz=8).double().eval()
    x = G(latents(2, 8).view(2, 8, 1, 1)).detach()
    with pytest.raises(gi.LayerTooLargeError, match=r"ConvTranspose2d layer .* 768 x 256 matrix .*max_dense_entries"):
        gi.invert(G, x, method=gi.Layerwise(max_dense_entries=1000))


def test_layers_over_the_lp_limit_fail_with_the_reason_instead_of_running_out_of_memory():
    G = random_mlp((10, 40, 30), seed=8)  # last layer contracts: 40 inputs, 30 outputs
    x = G(latents(4, 10)).detach()
    r = gi.invert(G, x, method=gi.Layerwise(max_lp_dim=32))
    assert r.status == [Status.FAILED] * 4
    assert all("exceed max_lp_dim=32" in m and "never a single point" in m for m in r.messages)
    assert all(m.startswith("layer 1: ") and "; " not in m for m in r.messages)  # layer 0 not attempted
    assert all(p == "none" for p in r.methods)  # a last layer contracting past the limit: nothing runs


def test_unknown_solver_is_rejected_with_the_choices():
    with pytest.raises(gi.InvalidInputError, match=r"unknown solver 'gurobi'.*\['cvxpylayers', 'highs', 'ipm'\]"):
        gi.Layerwise(solver="gurobi")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_stay_on_cuda():
    G = random_mlp((10, 40, 160)).cuda()
    z = latents(32, 10).cuda()
    r = gi.invert(G, G(z).detach(), method="layerwise")
    assert r.z.device.type == "cuda" and r.exact.all()
    assert rel_err(r.z.cpu(), z.cpu()).max() < 1e-6


def test_solver_options_reach_the_solver_and_unknown_ones_are_refused():
    G = random_mlp((10, 40, 30), seed=8)  # 40 -> 30 contracts: the LP is needed and no polish pins u
    x = G(latents(3, 10)).detach()
    # HiGHS capped at one simplex iteration cannot finish a layer LP: FAILED with its own word
    r = gi.invert(G, x, method=gi.Layerwise(solver="highs", solver_options={"max_iter": 1}))
    assert r.status == [Status.FAILED] * 3 and all("layer 1: HiGHS" in m and "teration" in m for m in r.messages)
    r = gi.invert(G, x, method=gi.Layerwise(solver="highs", solver_options={"tol": 1e-9}))
    assert Status.FAILED not in r.status
    with pytest.raises(gi.InvalidInputError, match=r"Expected solver_options among \['max_iter', 'tol'\], "
                                                   r"Got: \['iterations'\]"):
        gi.Layerwise(solver_options={"iterations": 5})
    for bad in ({"max_iter": 0}, {"max_iter": 2.5}, {"tol": None}, {"tol": -1e-9}):
        with pytest.raises(gi.InvalidInputError, match=r"tol > 0 \(a number\) and max_iter >= 1 \(an integer\)"):
            gi.Layerwise(solver_options=bad)


def test_anchors_mark_how_far_down_the_pass_is_exact():
    # 64-256-256-784 with a Tanh output (the tutorial MLP GAN's shape): the last layer pins the
    # second hidden layer; the square middle layer, with few units on, cannot pin its input.
    from torch import nn
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 784),
                      nn.Tanh()).double()
    with torch.no_grad():
        G[2].bias.sub_(0.3)  # most of h2 off, as in a trained GAN
    z = latents(6, 64, seed=1)
    chain = gi.to_chain(G)
    with torch.no_grad():
        outs = chain.forward_all(z)
    raw = Layerwise().solve(chain, outs[-1], rtol=1e-6)
    a = raw.anchors
    assert a.level.tolist() == [2] * 6 and a.ambiguous.all()
    assert torch.allclose(a.target(2, torch.arange(6)), outs[1], atol=1e-8)  # h2 itself
    assert torch.equal(a.target(2, torch.tensor([4, 1])), a.target(2, torch.arange(6))[[4, 1]])


def test_anchors_reach_the_latent_when_every_layer_is_unique():
    G = random_mlp([10, 60, 300], seed=2)
    z = latents(5, 10, seed=3)
    chain = gi.to_chain(G)
    raw = Layerwise().solve(chain, chain(z), rtol=1e-6)
    assert raw.anchors.level.tolist() == [0] * 5 and not raw.anchors.ambiguous.any()
    assert torch.allclose(raw.anchors.target(0, torch.arange(5)), z, atol=1e-9)


def test_the_sparse_layer_lp_recovers_more_of_the_paper_decoders_hidden_layers(reference_decoder, monkeypatch):
    # where least squares leaves the 60 -> 784 layer open (fewer lit pixels than hidden units),
    # the true hidden layer is a sparse vertex of its pre-image: the LP's small sum(u) finds it
    # more often than the plain LP's interior point (measured on 255 such samples: 126 against 97)
    import ganinvert.lp.layer as layer_lp
    z = latents(400, 20, seed=11)
    with torch.no_grad():
        x = reference_decoder(z)
    quick = gi.invert(reference_decoder, x, method=Layerwise(lp=False), radius=False)
    open_ = (quick.residual > 1e-6) & (x.norm(dim=1) > 0)
    z, x = z[open_], x[open_]
    sparse = gi.invert(reference_decoder, x, method="layerwise", radius=False)
    monkeypatch.setattr(layer_lp, "SPARSE_COST", 0.0)
    plain = gi.invert(reference_decoder, x, method="layerwise", radius=False)
    assert x.shape[0] >= 60
    assert sparse.solved.sum() >= plain.solved.sum() + 0.05 * x.shape[0]
    for r in (sparse, plain):
        assert (rel_err(r.z, z)[r.exact] <= 1e-6).all()
