"""The row-wise L-BFGS: each row its own problem, minimised to its known answer."""

import pytest
import torch

from ganinvert.search.lbfgs import lbfgs_rows


def _rosenbrock(z: torch.Tensor, rows=None) -> torch.Tensor:  # (rows, 2) -> (rows,), minimum 0 at (1, 1)
    return (1 - z[:, 0]) ** 2 + 100 * (z[:, 1] - z[:, 0] ** 2) ** 2


def test_each_row_reaches_the_rosenbrock_minimum():
    z0 = torch.tensor([[-1.2, 1.0], [0.0, 0.0], [2.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    z, f = lbfgs_rows(_rosenbrock, z0, iters=200)
    torch.testing.assert_close(z, torch.ones_like(z), rtol=0, atol=1e-6)
    assert (f < 1e-12).all() and (f <= _rosenbrock(z0)).all()


def test_a_row_does_not_depend_on_the_rows_beside_it():
    # row-dependent scales make the rows' line searches and curvature differ: one shared problem
    # (torch.optim.LBFGS on the batch) would couple them
    scales = torch.tensor([1.0, 1e3, 1e-2], dtype=torch.float64)

    def loss(z, rows, scales=scales):
        return (scales[rows, None] * (z - 3.0) ** 2).sum(1) + (z ** 4).sum(1)

    z0 = torch.tensor([[0.5, -2.0], [4.0, 1.0], [-3.0, 0.2]], dtype=torch.float64)
    together, _ = lbfgs_rows(loss, z0, iters=5)  # mid-way (near the optimum only rounding is left)
    alone, _ = lbfgs_rows(loss, z0[:1], iters=5)
    assert torch.equal(together[:1], alone) and (together[0] - z0[0]).abs().max() > 0.1


def test_a_row_that_cannot_descend_keeps_its_start():
    z0 = torch.zeros(2, 3, dtype=torch.float64)
    z, f = lbfgs_rows(lambda z, rows: (z ** 2).sum(1), z0, iters=10)  # already at the minimum
    assert torch.equal(z, z0) and (f == 0).all()


def test_a_history_of_no_pairs_is_refused():
    with pytest.raises(ValueError, match="history >= 1"):
        lbfgs_rows(_rosenbrock, torch.zeros(1, 2, dtype=torch.float64), iters=3, history=0)
