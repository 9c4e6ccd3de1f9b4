import pytest
import torch

from ganinvert.errors import LayerTooLargeError
from ganinvert.operators import Composed, Conv2d, ConvTranspose2d, Dense, Diagonal, compose

G = torch.Generator().manual_seed(0)


def _rand(*shape):
    return torch.randn(*shape, generator=G, dtype=torch.float64)


CONVS = [
    ConvTranspose2d(_rand(6, 4, 4, 4), in_shape=(6, 3, 3), stride=2, padding=1, output_padding=1,
                    dilation=1, groups=1),
    ConvTranspose2d(_rand(4, 2, 3, 3), in_shape=(4, 5, 5), stride=1, padding=0, output_padding=0,
                    dilation=2, groups=2),
    Conv2d(_rand(5, 3, 3, 3), in_shape=(3, 8, 8), stride=2, padding=1, dilation=1, groups=1),
]


@pytest.mark.parametrize("op", CONVS, ids=lambda o: type(o).__name__)
def test_dense_matches_matvec(op):
    u = _rand(2, op.in_dim)
    torch.testing.assert_close(u @ op.dense().T, op.matvec(u), rtol=1e-12, atol=1e-12)


def test_compose_fuses_dense_and_diagonal_into_one_matrix():
    W, d = _rand(5, 3), _rand(5)
    op = compose(Dense(W), Diagonal(d))
    assert isinstance(op, Dense)
    u = _rand(4, 3)
    torch.testing.assert_close(op.matvec(u), (u @ W.T) * d)


def test_compose_keeps_convolutions_matrix_free():
    op = compose(CONVS[0], Diagonal(_rand(*CONVS[0].out_shape)))
    assert isinstance(op, Composed)
    u = _rand(2, op.in_dim)
    torch.testing.assert_close(op.matvec(u), CONVS[0].matvec(u) * op.second.scale.reshape(-1))
    torch.testing.assert_close(u @ op.dense().T, op.matvec(u), rtol=1e-12, atol=1e-12)


def test_dense_refuses_matrices_over_the_limit():
    with pytest.raises(LayerTooLargeError, match="max_dense_entries|over the limit"):
        CONVS[0].dense(max_entries=100)


GEOMETRIES = [  # (in, out, kernel, stride, padding, output_padding, dilation, groups, size)
    (64, 1, (4, 4), 2, 0, 0, 1, 1, 13),  # dcgan_odd's last layer: the folded path
    (6, 3, (3, 2), (2, 1), (1, 0), (1, 0), 1, 1, 5),  # folded, uneven geometry
    (4, 6, (3, 3), 2, 1, 1, 2, 2, 5),  # conv_transpose2d's own kernel (groups, dilation)
    (8, 8, (4, 4), 1, 0, 0, 1, 1, 3),
]


@pytest.mark.parametrize("cin,cout,k,s,p,op,d,g,size", GEOMETRIES)
def test_convolutions_match_torch_in_shape_and_values(cin, cout, k, s, p, op, d, g, size):
    # out_shape comes from the formula (no meta-device probe) and the few-channel transpose is
    # computed as fold(W^T u): both must be torch's own, to rounding
    u = _rand(3, cin * size * size)
    w = _rand(cin, cout // g, *k)
    t = ConvTranspose2d(w, in_shape=(cin, size, size), stride=s, padding=p, output_padding=op, dilation=d, groups=g)
    ref = torch.nn.functional.conv_transpose2d(u.view(3, cin, size, size), w, stride=s, padding=p,
                                               output_padding=op, dilation=d, groups=g)
    assert t.out_shape == tuple(ref.shape[1:])
    torch.testing.assert_close(t.matvec(u), ref.reshape(3, -1), rtol=1e-12, atol=1e-12)
    w2 = _rand(cout, cin // g, *k)
    c = Conv2d(w2, in_shape=(cin, size + 4, size + 4), stride=s, padding=p, dilation=d, groups=g)
    u2 = _rand(3, cin * (size + 4) ** 2)
    ref2 = torch.nn.functional.conv2d(u2.view(3, cin, size + 4, size + 4), w2, stride=s, padding=p, dilation=d, groups=g)
    assert c.out_shape == tuple(ref2.shape[1:])
    torch.testing.assert_close(c.matvec(u2), ref2.reshape(3, -1), rtol=1e-12, atol=1e-12)


def _abs_cases():
    from ganinvert.operators import RowSelect, Slice, Stack, Sum
    W, V = _rand(6, 4), _rand(6, 4)
    conv = CONVS[0]
    like = torch.zeros(0, dtype=torch.float64)
    return [
        Dense(W), Diagonal(_rand(5)), *CONVS,
        Sum((Dense(W), Dense(V)), out_shape=(6,)),
        Composed(conv, Dense(_rand(3, conv.out_dim))),
        Stack((Dense(W), None, Slice(4, 1, (2,), like=like)), ((6,), (3,), (2,)), in_dim=4),
        RowSelect(conv, torch.tensor([0, 5, 7])),
    ]


@pytest.mark.parametrize("op", _abs_cases(), ids=lambda o: type(o).__name__)
def test_abs_bound_bounds_every_entry_of_the_matrix(op):
    """The uniqueness radius pushes deviation bounds through ``abs_bound``: its matrix must be >= |A|
    entrywise (exactly |A| for one matrix or convolution, whose entries are single weights)."""
    A, B = op.dense(), op.abs_bound().dense()
    assert (B >= A.abs() - 1e-12).all()
    if isinstance(op, (Dense, Diagonal, Conv2d, ConvTranspose2d)):
        torch.testing.assert_close(B, A.abs(), rtol=1e-12, atol=1e-12)


def test_a_torch_function_has_no_abs_bound():
    """``F.interpolate(mode="bicubic")`` has weights of both signs that its tensors do not show."""
    import torch.nn.functional as F

    from ganinvert.operators import LinearFunction, Sum
    op = LinearFunction(F.interpolate, kwargs={"scale_factor": 2, "mode": "bicubic"}, in_shape=(1, 3, 3),
                        like=torch.zeros(0, dtype=torch.float64))
    assert op.dense().min() < 0 and op.abs_bound() is None
    assert Sum((op, Dense(_rand(op.out_dim, 9))), out_shape=op.out_shape).abs_bound() is None  # nor what holds it


def test_a_wide_transposed_convolution_gives_a_sample_the_same_bits_alone_and_in_a_batch():
    # more than a few output channels: on CPU the input goes in channels-last (torch's float64
    # kernel for it is 2.4-3.9x faster on dcgan_odd's 256 -> 128 layer); its values and gradients
    # are torch's, and a sample's sums
    # are rounded alike alone and in any batch
    w = _rand(256, 128, 4, 4)  # dcgan_odd's second layer
    t = ConvTranspose2d(w, in_shape=(256, 3, 3), stride=1, padding=0, output_padding=0, dilation=1, groups=1)
    u = _rand(9, t.in_dim).requires_grad_(True)
    out = t.matvec(u)
    ref = torch.nn.functional.conv_transpose2d(u.view(9, 256, 3, 3), w).reshape(9, -1)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-13 * ref.abs().max().item())  # sums of 4096 terms
    g, = torch.autograd.grad((out ** 2).sum(), u)
    g_ref, = torch.autograd.grad((ref ** 2).sum(), u)
    torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-13 * g_ref.abs().max().item())
    with torch.no_grad():
        for i in range(9):
            assert torch.equal(t.matvec(u[i:i + 1])[0], out[i])


def test_a_stack_along_a_dimension_has_torch_cats_shape_and_values():
    # out_shape by torch.cat's rule (no meta-device probe): the labels' channels joined to a
    # feature map, as a label-conditional generator's first layer does
    from ganinvert.operators import Stack
    conv = Conv2d(_rand(2, 3, 3, 3), in_shape=(3, 6, 6), stride=1, padding=1, dilation=1, groups=1)
    st = Stack((conv, None), ((2, 6, 6), (1, 6, 6)), in_dim=conv.in_dim, dim=0)
    assert st.out_shape == (3, 6, 6)
    u = _rand(2, conv.in_dim)
    ref = torch.cat([conv.matvec(u).view(2, 2, 6, 6), torch.zeros(2, 1, 6, 6, dtype=torch.float64)], 1)
    torch.testing.assert_close(st.matvec(u), ref.reshape(2, -1))
    with pytest.raises(ValueError, match="cannot concatenate"):
        Stack((conv, None), ((2, 6, 6), (1, 5, 6)), in_dim=conv.in_dim, dim=0)


def test_converting_a_label_conditional_generator_does_not_import_torchs_compiler():
    # torch's compiler (torch._dynamo, 2-3 s to import) came in with the first meta-device op; under
    # cond= that time came out of the first label's share of the time limit
    import subprocess
    import sys
    code = ("import sys, torch, ganinvert as gi; from ganinvert import models; m = models.load('cgan_mlp'); "
            "rep = gi.inspect(m.generator.double().eval(), cond=torch.arange(2)); "
            "print(rep.not_converted == '', 'torch._dynamo' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "False"]  # converted, without the compiler
