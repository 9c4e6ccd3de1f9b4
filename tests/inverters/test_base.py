"""RawSolution: one constructor for a batch to fill, scatter of a sub-batch's results, and
adoption of a later stage's latents; statuses never EXACT without certificate."""

import math

import torch

from ganinvert import Status
from ganinvert.inverters.base import RawSolution, assign_status


def _sub(z, *, bound=None):
    raw = RawSolution.of(z, 2, method="lstsq/ipm")
    raw.layer_residuals[:] = 0.5
    raw.unique[:, 0] = True
    raw.failed[0] = True
    raw.messages[0] = "broke"
    raw.bound = bound
    return raw


def test_empty_batch_has_nothing_measured_certified_or_flagged():
    raw = RawSolution.empty(3, 2, 4, method="none")
    assert raw.z.shape == (3, 4) and not raw.z.any() and raw.z.dtype == torch.float64
    assert raw.layer_residuals.isnan().all() and not raw.unique.any()
    assert not raw.failed.any() and not raw.infeasible.any() and raw.bound is None
    assert raw.methods == ["none"] * 3 and raw.messages == [""] * 3


def test_scatter_writes_only_the_given_rows():
    out = RawSolution.empty(4, 2, 3)
    out.scatter(torch.tensor([3, 1]), _sub(torch.ones(2, 3, dtype=torch.float64), bound=torch.tensor([0.1, 0.2], dtype=torch.float64)))
    assert out.z[[1, 3]].eq(1).all() and not out.z[[0, 2]].any()
    assert out.failed.tolist() == [False, False, False, True]  # sub-row 0 went to row 3
    assert out.messages == ["", "", "", "broke"] and out.methods == ["", "lstsq/ipm", "", "lstsq/ipm"]
    assert out.unique[:, 0].tolist() == [False, True, False, True] and not out.unique[:, 1].any()
    assert out.layer_residuals[[1, 3]].eq(0.5).all() and out.layer_residuals[[0, 2]].isnan().all()
    assert out.bound.tolist()[1] == 0.2 and out.bound.tolist()[3] == 0.1 and math.isnan(out.bound[0])
    out.scatter(torch.tensor([0]), _sub(torch.zeros(1, 3, dtype=torch.float64)))  # a sub-batch without bounds keeps them
    assert out.bound[3].item() == 0.1


def test_adopt_clears_what_was_certified_about_the_old_latents():
    raw = _sub(torch.zeros(3, 2))
    raw.infeasible[2] = True
    raw.adopt(torch.tensor([0, 2]), torch.ones(2, 2), methods=["a", "b"], messages=["m0", "m2"])
    assert raw.z[[0, 2]].eq(1).all() and not raw.z[1].any()
    assert not raw.failed.any() and not raw.infeasible.any()
    assert raw.unique[:, 0].tolist() == [False, True, False]  # row 1 keeps its certificate
    assert raw.layer_residuals.eq(0.5).all()  # the earlier stage's record stays
    assert raw.methods == ["a", "lstsq/ipm", "b"] and raw.messages == ["m0", "", "m2"]


def test_status_needs_g_of_z_equal_x_and_every_certificate():
    raw = RawSolution.empty(5, 2, 3)
    raw.unique[[0, 1]] = True
    raw.unique[1, 1] = False
    raw.failed[2] = True
    raw.infeasible[3] = True
    res = torch.tensor([1e-9, 1e-9, 1e-9, 0.5, 1e-9], dtype=torch.float64)
    st, msg = assign_status(raw, res, rtol=1e-6, invalid=["", "", "", "", "x has NaN"])
    assert st == [Status.EXACT, Status.EXACT_NONUNIQUE, Status.FAILED, Status.INFEASIBLE, Status.INVALID]
    assert "layer(s) [1]" in msg[1] and msg[4] == "x has NaN"


def test_adopt_drops_a_bound_certified_for_the_old_latents():
    raw = RawSolution.of(torch.zeros(2, 2, dtype=torch.float64), 1)
    raw.bound = torch.tensor([0.1, 0.2], dtype=torch.float64)
    raw.adopt(torch.tensor([1]), torch.ones(1, 2, dtype=torch.float64), methods=["adam"], messages=[""])
    assert raw.bound[0].item() == 0.1 and raw.bound[1].isnan()
