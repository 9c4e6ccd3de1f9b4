import math

import pytest
import torch

from ganinvert import InvalidInputError
from ganinvert import activations as acts


def _tol(y):
    return torch.zeros(y.shape[0], 1, dtype=y.dtype)


def test_relu_positive_rows_are_pinned_zero_rows_one_sided():
    y = torch.tensor([[0.5, 0.0, 2.0]], dtype=torch.float64)
    bd = acts.ReLU().bounds(y, tol=_tol(y))
    assert bd.eq.tolist() == [[True, False, True]]
    assert bd.lo[0, 1] == -math.inf and bd.hi[0, 1] == 0.0
    assert bd.lo[0, 0] == 0.5 and bd.hi[0, 2] == 2.0


def test_relu_values_at_or_below_tolerance_count_as_zero():
    y = torch.tensor([[1e-12, 1.0]], dtype=torch.float64)
    bd = acts.ReLU().bounds(y, tol=torch.tensor([[1e-9]], dtype=torch.float64))
    assert bd.eq.tolist() == [[False, True]]


def test_leaky_relu_inverts_both_branches_and_weights_negative_rows():
    act = acts.LeakyReLU(0.2)
    p = torch.tensor([[-3.0, 0.0, 1.5]], dtype=torch.float64)
    bd = act.bounds(act.forward(p), tol=_tol(p))
    torch.testing.assert_close(bd.lo, p)
    assert bd.eq.all()
    assert bd.weight.tolist() == [[0.2, 1.0, 1.0]]


@pytest.mark.parametrize("slope", [0.0, -0.1])
def test_leaky_relu_rejects_non_invertible_slopes(slope):
    with pytest.raises(ValueError, match="must be > 0"):
        acts.LeakyReLU(slope)


@pytest.mark.parametrize("act", [acts.Tanh(), acts.Sigmoid()])
def test_saturating_inverse_inside_range_and_one_sided_at_the_ends(act):
    p = torch.tensor([[-2.0, 0.3, 1.0, 40.0, -40.0]], dtype=torch.float64)
    y = act.forward(p)
    bd = act.bounds(y, tol=_tol(y))
    torch.testing.assert_close(bd.lo[0, :3], p[0, :3], rtol=1e-10, atol=1e-10)
    assert bd.eq[0, :3].all() and not bd.eq[0, 3:].any()
    # saturated high: p >= threshold (upper side open); saturated low: p <= threshold
    assert bd.hi[0, 3] == math.inf and bd.lo[0, 3] < 40.0
    assert bd.lo[0, 4] == -math.inf and bd.hi[0, 4] > -40.0


def test_out_of_range_flags_only_the_offending_sample():
    y = torch.tensor([[0.0, 0.5], [0.2, 255.0]], dtype=torch.float64)
    flagged = acts.Tanh().out_of_range(y, tol=torch.full((2, 1), 1e-9, dtype=torch.float64))
    assert flagged.tolist() == [False, True]


def test_near_saturated_pinned_rows_keep_a_floor_weight():
    # an MNIST background pixel through Tanh: y = tanh(-6) = -0.99998; its inverse is still
    # accurate in float64, and a weight of 1 - y^2 ~ 2.5e-5 would wreck the rank check
    p = torch.tensor([[-6.0, 0.0]], dtype=torch.float64)
    y = torch.tanh(p)
    bd = acts.Tanh().bounds(y, tol=_tol(y))
    assert bd.eq.all()
    assert bd.weight[0, 0] == pytest.approx(1e-2) and bd.weight[0, 1] == 1.0
    torch.testing.assert_close(bd.lo, p, rtol=1e-9, atol=1e-9)


# --- behaviour that differs per activation lives on it (noisy rows, pattern slopes, inspect's rule)

def test_noisy_rows_refuse_saturating_activations_with_one_message():
    y, tau = torch.zeros(1, 3, dtype=torch.float64), torch.full((1, 1), 0.1, dtype=torch.float64)
    for act in (acts.Tanh(), acts.Sigmoid()):
        with pytest.raises(InvalidInputError, match=r"Expected: ReLU, LeakyReLU or no activation for noisy "
                                                       rf"inversion, Got: {type(act).__name__}\(\)\. Hint: .*'hybrid'"):
            act.threshold_bounds(y, tau)
        with pytest.raises(InvalidInputError, match="noisy inversion"):
            act.relax_rows(y, tau)


def test_threshold_rows_fit_clear_values_and_bound_the_rest():
    tau = torch.full((1, 1), 0.1, dtype=torch.float64)
    y = torch.tensor([[0.5, 0.05, -0.3]], dtype=torch.float64)
    relu = acts.ReLU().threshold_bounds(y, tau)
    assert relu.lo.tolist() == [[0.5, -math.inf, -math.inf]] and relu.hi.tolist() == y.tolist()
    leaky = acts.LeakyReLU(0.2).threshold_bounds(y, tau)
    # positive: pinned at y; in the band: either branch, (y - tau) / a .. y + tau; negative: pinned at y / a
    torch.testing.assert_close(leaky.lo, torch.tensor([[0.5, -0.25, -1.5]], dtype=torch.float64))
    torch.testing.assert_close(leaky.hi, torch.tensor([[0.5, 0.15, -1.5]], dtype=torch.float64))
    assert leaky.weight.tolist() == [[1.0, 1.0, 0.2]]


def test_relax_rows_bound_from_above_and_weigh_the_fitted_rows():
    tau = torch.full((1, 1), 0.1, dtype=torch.float64)
    y = torch.tensor([[0.5, 0.05, -0.3]], dtype=torch.float64)
    rb, g = acts.ReLU().relax_rows(y, tau)
    torch.testing.assert_close(rb.hi, torch.tensor([[0.6, 0.15, 0.0]], dtype=torch.float64))
    assert g.tolist() == [[0.5, 0.0, 0.0]] and (rb.lo == -math.inf).all()
    rb, g = acts.LeakyReLU(0.2).relax_rows(y, tau)
    torch.testing.assert_close(rb.hi, torch.tensor([[0.6, 0.15, -1.0]], dtype=torch.float64))
    torch.testing.assert_close(g, torch.tensor([[0.5, 0.0, 0.06]], dtype=torch.float64))
    rb, g = acts.Identity().relax_rows(y, tau)
    torch.testing.assert_close(rb.hi - rb.lo, torch.full_like(y, 0.2))
    assert not g.any()


def test_pattern_slopes_and_which_activations_the_pattern_lp_takes():
    on = torch.tensor([[True, False]])
    like = torch.zeros(1, 2, dtype=torch.float64)
    assert acts.ReLU().branch_slope(on, like=like).tolist() == [[1.0, 0.0]]
    assert acts.LeakyReLU(0.01).branch_slope(on, like=like).tolist() == [[1.0, 0.01]]  # exact in float64
    assert acts.Identity().branch_slope(on, like=like).tolist() == [[1.0, 1.0]]
    with pytest.raises(TypeError, match="not piecewise linear"):
        acts.Sigmoid().branch_slope(on, like=like)


def test_only_relu_calls_an_all_zero_observation_uninformative():
    y = torch.tensor([[0.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert acts.ReLU().uninformative(y).tolist() == [True, False]
    assert not acts.LeakyReLU().uninformative(y).any() and not acts.Sigmoid().uninformative(y).any()


def test_hardtanh_pins_the_inside_and_bounds_the_ends_from_one_side():
    y = torch.tensor([[-1.0, 0.3, 2.0]], dtype=torch.float64)
    bd = acts.Hardtanh(-1.0, 2.0).bounds(y, tol=_tol(y))
    assert bd.eq.tolist() == [[False, True, False]]
    assert (bd.lo[0, 0], bd.hi[0, 0]) == (-math.inf, -1.0)  # at the bottom: p <= -1
    assert (bd.lo[0, 2], bd.hi[0, 2]) == (2.0, math.inf)  # at the top: p >= 2
    assert acts.Hardtanh(0.0, 6.0).range == (0.0, 6.0)  # ReLU6


@pytest.mark.parametrize("act", [acts.ELU(0.7), acts.Softplus(2.0, threshold=3.0)], ids=repr)
def test_smooth_bijections_invert_exactly_inside_and_one_sided_where_saturated(act):
    p = torch.tensor([[-3.0, -0.5, 0.0, 0.4, 1.4, 2.5]], dtype=torch.float64)  # Softplus: beta p > 3 is linear
    y = act.forward(p)
    bd = act.bounds(y, tol=_tol(y))
    torch.testing.assert_close(bd.lo, p, rtol=0, atol=1e-12)
    assert bd.eq.all()
    low = torch.tensor([[act.range[0]]], dtype=torch.float64)  # the output at its asymptote
    sat = act.bounds(low, tol=_tol(low))
    assert sat.lo[0, 0] == -math.inf and sat.hi[0, 0] < -5  # only "p is very negative"


def test_prelu_slopes_are_per_unit():
    act = acts.LeakyReLU(torch.tensor([0.1, 0.5], dtype=torch.float64))
    y = torch.tensor([[-1.0, -1.0]], dtype=torch.float64)
    assert act.bounds(y, tol=_tol(y)).lo.tolist() == [[-10.0, -2.0]]
    assert act.forward(torch.tensor([[-2.0, -2.0]], dtype=torch.float64)).tolist() == [[-0.2, -1.0]]
    assert "PReLU(2 slopes" in repr(act) and act == acts.LeakyReLU(torch.tensor([0.1, 0.5], dtype=torch.float64))


def test_parallel_asks_each_part_for_its_units():
    act = acts.Parallel([(acts.ReLU(), 2), (acts.Identity(), 1), (acts.Identity(), 1)])
    assert act.parts == ((acts.ReLU(), 2), (acts.Identity(), 2))  # neighbours merged
    p = torch.tensor([[-1.0, 2.0, -3.0, 4.0]], dtype=torch.float64)
    assert act.forward(p).tolist() == [[0.0, 2.0, -3.0, 4.0]]
    y = act.forward(p)
    bd = act.bounds(y, tol=_tol(y))
    assert bd.eq.tolist() == [[False, True, True, True]] and bd.lo[0, 2] == -3.0
    assert act.branch_slope(p >= 0, like=p).tolist() == [[0.0, 1.0, 1.0, 1.0]]
    lo, hi = act.region_bounds(p >= 0, like=p)  # identity units carry no region row
    assert lo.tolist() == [[-math.inf, 0.0, -math.inf, -math.inf]] and hi.tolist() == [[0.0, math.inf] + [math.inf] * 2]
    assert act.kinked and act.piecewise_linear and act.range == (-math.inf, math.inf)


@pytest.mark.parametrize("hidden", [torch.nn.PReLU(1, 0.3), torch.nn.ELU(), torch.nn.Softplus(), torch.nn.Hardtanh(-2, 2),
                                    torch.nn.ReLU6()], ids=lambda m: type(m).__name__)
def test_an_expanding_mlp_with_each_new_activation_is_inverted_exactly(hidden):
    import ganinvert as gi
    torch.manual_seed(0)
    G = torch.nn.Sequential(torch.nn.Linear(4, 30), hidden, torch.nn.Linear(30, 80), torch.nn.LeakyReLU(0.1)).double()
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    r = gi.invert(G.eval(), G(z).detach())
    assert [s.name for s in r.status] == ["EXACT"] * 5, r.messages
    torch.testing.assert_close(r.z, z, rtol=0, atol=1e-7)


def test_a_float32_observation_is_searched_at_float32s_resolution():
    # tanh(p) 1e-6 from 1: float64 resolves it (an equation, p = atanh), float32 does not (its
    # 1 - y is off by up to 6e-8, the atanh by 0.03): LM's rows for a sample of float32 numbers
    # are one-sided there, every row weighing 1; the exact rows (bounds) stay float64's
    p = torch.tensor([[-0.5, 0.25, 7.25]], dtype=torch.float64)
    y = torch.cat([torch.tanh(p), torch.tanh(p.float()).double()])  # a float64 sample, a float32 one
    tanh = acts.Tanh()
    rows = tanh.search_bounds(y)
    assert rows.eq.tolist() == [[True, True, True], [True, True, False]]
    assert rows.lo[1, 2] > 4 and rows.hi[1, 2] == math.inf  # only "p is large": atanh(1 - sqrt(eps_32)) = 4.3
    torch.testing.assert_close(rows.lo[:, :2], p[:, :2].expand(2, 2), rtol=0, atol=1e-6)
    assert (rows.weight == 1).all() and (tanh.bounds(y, tol=_tol(y)).weight < 1).any()
    assert tanh.bounds(y, tol=_tol(y)).eq.all()
    for i in range(2):  # each sample's rows are its own, alone or in a batch
        assert torch.equal(tanh.search_bounds(y[i:i + 1]).lo, rows.lo[i:i + 1])
    # round values (0, -1: float16 numbers too) say nothing of their origin: float64's band
    ends = torch.tensor([[-1.0, 0.0, 0.5]], dtype=torch.float64)
    assert tanh.search_bounds(ends).hi[0, 0] < -9  # atanh(-1 + sqrt(eps_64)) = -9.4
    # near a zero end float32 keeps its relative precision: Sigmoid's 1e-4 is still an equation
    sig = torch.sigmoid(torch.tensor([[-9.2, 0.3]])).double()
    assert acts.Sigmoid().search_bounds(sig).eq.tolist() == [[True, True]]
    assert tanh.search_bounds(torch.zeros(0, 3, dtype=torch.float64)).lo.shape == (0, 3)
