import torch

from ganinvert import InversionResult, Status


def test_counts_and_summary():
    r = InversionResult(z=torch.zeros(3, 2), x_hat=torch.zeros(3, 4),
                        status=[Status.EXACT, Status.INVALID, Status.EXACT],
                        residual=torch.tensor([1e-12, float("nan"), 3e-12], dtype=torch.float64),
                        layer_residuals=torch.zeros(3, 1), unique=torch.ones(3, 1, dtype=torch.bool),
                        methods=["lstsq"] * 3, messages=[""] * 3, method="layerwise", timings={"total": 0.5})
    assert r.counts()["EXACT"] == 2 and r.counts()["INVALID"] == 1 and r.counts()["FAILED"] == 0
    assert r.exact.tolist() == [True, False, True]
    assert r.summary() == ("layerwise: 3 samples (EXACT=2, INVALID=1); median relative residual "
                           "1.00e-12; 0.500 s")


def test_status_prints_its_name():
    from ganinvert import Status

    assert str(Status.EXACT) == "EXACT" and f"{Status.INFEASIBLE}" == "INFEASIBLE"
