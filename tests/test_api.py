"""Every error path a user can hit, and per-sample statuses in mixed batches."""

import inspect

import pytest
import torch

import ganinvert as gi
from ganinvert import Status

from .conftest import latents, random_mlp


@pytest.fixture(scope="module")
def relu_net():
    return random_mlp((6, 30, 90), seed=11)


@pytest.fixture(scope="module")
def tanh_net():
    return random_mlp((6, 30, 90), out_act="tanh", seed=12)


def test_one_bad_sample_does_not_spoil_the_batch(relu_net):
    z = latents(4, 6)
    x = relu_net(z).detach().clone()
    x[1, 3] = float("nan")
    x[2] = 0.0
    r = gi.invert(relu_net, x)
    assert [s for s in r.status] == [Status.EXACT, Status.INVALID, Status.INVALID, Status.EXACT]
    assert "NaN/Inf" in r.messages[1]
    assert "all zeros" in r.messages[2]
    assert (r.z[[0, 3]] - z[[0, 3]]).abs().max() < 1e-8


def test_pixels_outside_the_tanh_range_are_invalid_with_a_fix(tanh_net):
    x = tanh_net(latents(2, 6)).detach().clone()
    x[0] = (x[0] + 1) * 127.5  # an 8-bit image handed to a Tanh generator
    r = gi.invert(tanh_net, x)
    assert r.status == [Status.INVALID, Status.EXACT]
    assert "Tanh" in r.messages[0] and "x / 127.5 - 1" in r.messages[0]


def test_negative_pixels_for_a_relu_output_are_invalid(relu_net):
    x = relu_net(latents(1, 6)).detach() - 1.0
    assert gi.invert(relu_net, x).status == [Status.INVALID]


def test_wrong_shape_says_expected_and_got(relu_net):
    with pytest.raises(gi.ShapeMismatchError, match=r"Expected: \(90\) or \(B, 90\).*Got: \(4, 91\)"):
        gi.invert(relu_net, torch.rand(4, 91, dtype=torch.float64))


def test_wrong_number_of_dims_gets_a_reshape_hint():
    G = random_mlp((6, 30, 64))
    net = torch.nn.Sequential(G, torch.nn.Unflatten(1, (1, 8, 8))).eval()
    with pytest.raises(gi.ShapeMismatchError, match=r"Got: \(2, 64\) \(2 dims\).*x.view\(-1, 1, 8, 8\)"):
        gi.invert(net, torch.rand(2, 64, dtype=torch.float64))


def test_empty_batch_is_an_error(relu_net):
    with pytest.raises(gi.InvalidInputError, match="at least one sample"):
        gi.invert(relu_net, torch.empty(0, 90, dtype=torch.float64))


def test_integer_images_are_refused_with_a_hint(relu_net):
    with pytest.raises(gi.InvalidInputError, match=r"floating-point.*uint8.*/ 255"):
        gi.invert(relu_net, torch.zeros(2, 90, dtype=torch.uint8))


def test_non_tensor_input_is_refused(relu_net):
    with pytest.raises(gi.InvalidInputError, match="torch.Tensor"):
        gi.invert(relu_net, [[0.0] * 90])


def test_unknown_method_and_bad_rtol(relu_net):
    x = relu_net(latents(1, 6)).detach()
    with pytest.raises(gi.InvalidInputError, match="unknown method 'sgd'"):
        gi.invert(relu_net, x, method="sgd")
    with pytest.raises(gi.InvalidInputError, match="0 < rtol < 1"):
        gi.invert(relu_net, x, rtol=0.0)


def test_errors_are_also_builtin_exceptions(relu_net):
    with pytest.raises(ValueError):
        gi.invert(relu_net, torch.rand(4, 91, dtype=torch.float64))


def test_x_outside_the_range_of_the_last_layer_is_infeasible(relu_net):
    # 90 positive pixels would need 90 independent equalities on a 30-dim input: impossible
    x = torch.rand(3, 90, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.1
    r = gi.invert(relu_net, x, method="layerwise")
    assert r.status == [Status.INFEASIBLE] * 3
    assert (r.residual > 1e-3).all()
    assert all("layer 1: no pre-image: least squares" in m for m in r.messages)  # proven without the LP
    auto = gi.invert(relu_net, x)  # the default fits instead, and keeps the proof in its message
    assert auto.status == [Status.APPROXIMATE] * 3 and (auto.residual <= r.residual).all()
    assert all("outside the generator's range (proven" in m for m in auto.messages)


def test_throw_raises_when_a_sample_is_not_inverted(relu_net):
    x = relu_net(latents(2, 6)).detach().clone()
    x[1] = float("inf")
    with pytest.raises(gi.InversionError, match=r"1 of 2 samples.*sample 1: INVALID"):
        gi.invert(relu_net, x, throw=True)


def test_float32_observation_returns_float32_results(relu_net):
    G32 = random_mlp((6, 30, 90), seed=11, dtype=torch.float32)
    z = latents(5, 6, dtype=torch.float32)
    r = gi.invert(G32, G32(z).detach())
    assert r.z.dtype == torch.float32 and r.x_hat.dtype == torch.float32
    assert r.exact.all()
    assert r.timings["total"] >= r.timings["solve"] > 0


def test_throw_names_a_solver_breakdown_as_solver_error():
    G = random_mlp((10, 40, 30), seed=8)  # 40 -> 30 contracts: the LP is needed
    x = G(latents(2, 10)).detach()
    with pytest.raises(RuntimeError, match=r"2 of 2 samples.*sample 0: FAILED: layer 1: HiGHS") as e:
        gi.invert(G, x, method=gi.Layerwise(solver="highs", solver_options={"max_iter": 1}), throw=True)
    assert type(e.value) is gi.SolverError  # caught as RuntimeError, as a caller without ganinvert's types would


def test_seed_governs_the_random_starts_of_an_inverter_named_by_a_string():
    G = random_mlp((5, 20, 60), seed=3)
    x = G(latents(4, 5, seed=4)).detach()
    run = lambda seed: gi.invert(G, x, method="adam", seed=seed).z  # noqa: E731
    a, b, c = run(1), run(2), run(1)
    assert torch.equal(a, c)  # one seed: the same bits
    assert not torch.equal(a, b)  # two seeds: different starts, different ends


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_generators_device_governs_and_results_come_back_on_xs(caplog):
    G = random_mlp((5, 20, 60), seed=7).cuda()
    z = latents(4, 5, seed=8)
    x = G(z.cuda()).detach().cpu()
    with caplog.at_level("INFO", logger="ganinvert.api"):
        res = gi.invert(G, x)
    assert "x is on cpu and the generator on cuda:0: inverting on cuda:0" in caplog.text
    assert res.z.device.type == "cpu" and res.x_hat.device.type == "cpu"
    assert [s.name for s in res.status] == ["EXACT"] * 4 and (res.z - z).abs().max() <= 1e-9


def test_the_readmes_method_table_lists_exactly_the_names_method_takes():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = text.split("| method | what it does | when it applies |")[1].split("\n\n")[0]
    cells = [row.split("|")[1].strip() for row in table.strip().splitlines()[1:]]
    names = [cell.split("`")[1] for cell in cells]
    assert sorted(names) == sorted(gi.INVERTERS)
    default = inspect.signature(gi.invert).parameters["method"].default
    assert [n for n, c in zip(names, cells, strict=True) if "(default)" in c] == [default] == ["auto"]
    for name in names:  # and each of them is accepted
        gi.invert(random_mlp((3, 12, 30), seed=1), random_mlp((3, 12, 30), seed=1)(latents(1, 3)).detach(),
                  method=name, time_limit=5)


@pytest.mark.parametrize("out_act,path", [("relu", "norm='linf'"), ("tanh", "method='auto'")])
def test_a_bfloat16_generator_is_inverted_as_noisy_data_and_says_so(out_act, path):
    G = random_mlp((20, 100, 500), act="relu", out_act=out_act, seed=0).to(torch.bfloat16)
    z = latents(4, 20, seed=1).to(torch.bfloat16)
    res = gi.invert(G, G(z).detach())
    assert (res.residual < 0.01).all()  # the exact LP alone: 9-36% on these
    assert all(m.startswith("torch.bfloat16 rounding is noise") and path in m for m in res.messages)
    exact = gi.invert(G, G(z).detach(), method=gi.Layerwise())  # an instance: as asked, no switch
    assert not any("rounding is noise" in m for m in exact.messages)


def test_the_default_method_is_auto_and_costs_the_layerwise_pass_where_that_certifies(relu_net):
    z = latents(5, 6, seed=3)
    x = relu_net(z).detach()
    r, lw = gi.invert(relu_net, x), gi.invert(relu_net, x, method="layerwise")
    assert r.method == "auto" and lw.method == "layerwise"
    assert r.status == lw.status == [Status.EXACT] * 5
    assert r.methods == lw.methods and not any(s in m for m in r.methods for s in (">lm", "pattern", "adam"))
    assert torch.equal(r.z, lw.z)


def test_a_real_digit_off_the_range_is_fitted_by_default_and_the_proof_is_named():
    # a 12-60-784 LeakyReLU decoder: every output row is an equation, so least squares over 784
    # rows for 60 inputs proves a real digit out of range without any LP
    from ganinvert.models.data import load_mnist
    G = random_mlp((12, 60, 784), act="leaky", out_act="leaky", seed=4)
    x = load_mnist(split="held_out")[0][:3].double().reshape(3, 784)
    r = gi.invert(G, x)
    assert r.status == [Status.APPROXIMATE] * 3
    assert all("outside the generator's range (proven" in m and "random starts" in m for m in r.messages)
    assert all(m.startswith("lstsq/lstsq") for m in r.methods)  # the proof and the projection: least squares
    adam = gi.invert(G, x, method=gi.Adam(steps=300, lr=0.05, seed=0))
    assert r.residual.median() < adam.residual.median()  # the fit goes on (L-BFGS) where Adam stops
