"""``InversionComparison``: a LightningModule that inverts each batch with several methods and
logs their metrics, so a ``lightning.Trainer`` brings progress bars, loggers and multi-device
(DDP) runs to an inversion benchmark::

    module = InversionComparison(G, {"layerwise": "layerwise", "adam": ganinvert.Adam(steps=500)})
    trainer = lightning.Trainer(inference_mode=False)   # Adam follows gradients
    trainer.test(module, DataLoader(TensorDataset(x, z_star), batch_size=64))
    module.sample_rows   # one dict per sample and method (status, errors, time)

Batches are ``x`` or ``(x,)`` (no known latent) or ``(x, z_star)``. At the end of each epoch
every method's per-sample columns are gathered over all devices and summarised by
:func:`ganinvert.metrics.summarize`, the same summary the Hydra app writes, logged as
``<method>/<metric>`` with the statistic in the name: ``exact_rate``, ``solved_rate``,
``success@t`` for each latent-error threshold (when ``z_star`` is known),
``median_latent_rel_err``, ``median_output_rel_err``, ``median_residual``, ``median_psnr``,
``median_ssim`` (nan for non-image outputs), ``ms_per_sample``, ``seconds`` and ``samples``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import lightning as L
import torch
from torch import nn

from .adapters import to_chain
from .api import invert
from .chain import Chain
from .errors import InvalidInputError
from .inverters import Inverter
from .metrics import THRESHOLDS, columns, sample_metrics, sample_rows, summarize
from .result import InversionResult


class InversionComparison(L.LightningModule):
    """Compare inverters batch by batch under a Lightning ``Trainer``.

    Args:
        generator: the generator module (eval mode; moved to the Trainer's device with this module).
        inverters: name -> inverter (an :class:`ganinvert.Inverter` or a method name such as
            ``"layerwise"``); each batch is inverted by each, in this order.
        latent_shape: per-sample latent shape when it cannot be inferred.
        rtol: tolerance of ``G(z) = x`` (default by dtype, see :func:`ganinvert.invert`).
        data_range: pixel range for PSNR/SSIM (default: the batch's max - min).
        thresholds: latent relative errors for ``success@t``.
    """

    def __init__(self, generator: nn.Module, inverters: Mapping[str, Inverter | str], *,
                 latent_shape: Sequence[int] | None = None, rtol: float | None = None,
                 data_range: float | None = None, thresholds: Sequence[float] = THRESHOLDS) -> None:
        super().__init__()
        if not isinstance(generator, nn.Module):
            raise InvalidInputError(f"Expected: generator as a torch.nn.Module, Got: {type(generator).__name__}")
        if not inverters:
            raise InvalidInputError("Expected: at least one inverter, e.g. {'layerwise': 'layerwise'}, Got: none")
        self.generator = generator.eval()
        self.inverters = dict(inverters)
        self.latent_shape = None if latent_shape is None else tuple(latent_shape)
        self.rtol, self.data_range, self.thresholds = rtol, data_range, tuple(thresholds)
        self.sample_rows: list[dict] = []
        self._chain: Chain | None = None
        self._seen = 0
        self._columns: dict[str, list[dict[str, torch.Tensor]]] = {}

    def _get_chain(self) -> Chain:
        if self._chain is None:  # the weights are fixed: convert once per run
            self._chain = to_chain(self.generator.eval(), latent_shape=self.latent_shape)
        return self._chain

    def on_test_start(self) -> None:
        self._chain, self._seen, self.sample_rows, self._columns = None, 0, [], {}

    on_predict_start = on_test_start

    @staticmethod
    def _unpack(batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(batch, torch.Tensor):
            return batch, None
        if isinstance(batch, (tuple, list)) and len(batch) in (1, 2):
            return batch[0], (batch[1] if len(batch) == 2 else None)
        raise InvalidInputError(f"Expected: a batch x, (x,) or (x, z_star), Got: {type(batch).__name__} "
                                f"of length {len(batch) if hasattr(batch, '__len__') else '?'}")

    def invert_batch(self, batch) -> dict[str, tuple[InversionResult, dict[str, torch.Tensor]]]:
        """Each method's result and per-sample metrics for one batch."""
        x, z = self._unpack(batch)
        chain = self._get_chain()
        out = {}
        for name, inv in self.inverters.items():
            r = invert(chain, x, method=inv, rtol=self.rtol)
            out[name] = (r, sample_metrics(r, x, z, data_range=self.data_range))
        return out

    def test_step(self, batch, batch_idx: int) -> None:
        x, _ = self._unpack(batch)
        for name, (r, m) in self.invert_batch(batch).items():
            cols = columns(r, m)
            self._columns.setdefault(name, []).append(cols)
            self.sample_rows += sample_rows(r, cols, start=self._seen, rank=self.global_rank, method=name)
        self._seen += x.shape[0]

    def on_test_epoch_end(self) -> None:
        for name, parts in self._columns.items():
            cols = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
            if self.trainer.world_size > 1:
                cols = self._gather(cols)
            for key, v in summarize(cols, thresholds=self.thresholds).items():
                if not isinstance(v, dict):  # the status counts stay in samples.csv
                    # equal on every process already; sync_dist only keeps Lightning's check quiet
                    self.log(f"{name}/{key}", float(v), on_step=False, on_epoch=True, sync_dist=True)
        self._columns = {}

    def _gather(self, cols: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every process's per-sample columns, in the data set's order, without the samples
        ``DistributedSampler`` repeats to give each process as many as the others (unequal counts
        from another sampler are padded for the collective and the padding dropped). Every
        process must have tested at least one batch."""
        counts = self.all_gather(torch.tensor(cols["status"].numel(), device=self.device)).reshape(-1).cpu()
        m, W = int(counts.max()), counts.numel()
        keep = (torch.arange(m)[:, None] < counts[None, :]).reshape(-1)  # (m * W,) process-minor order
        out = {}
        for key, v in cols.items():
            pad = torch.full((m,), -1 if key == "status" else float("nan"), dtype=v.dtype)
            pad[:v.numel()] = v
            g = self.all_gather(pad.to(self.device)).reshape(W, m).cpu()
            # DistributedSampler without shuffling deals sample j to process j % W: interleave back
            out[key] = g.transpose(0, 1).reshape(-1)[keep]
        n = self._dataset_size()
        if n is not None and bool((counts == m).all()) and 0 <= m * W - n < W:
            out = {key: v[:n] for key, v in out.items()}  # the repeats pad the end
        return out

    def _dataset_size(self) -> int | None:
        loaders = self.trainer.test_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        try:
            return len(loader.dataset)
        except (AttributeError, TypeError):  # an iterable data set has no length
            return None

    def predict_step(self, batch, batch_idx: int) -> dict[str, InversionResult]:
        """Each method's :class:`ganinvert.InversionResult` for the batch."""
        return {name: r for name, (r, _) in self.invert_batch(batch).items()}

    def configure_optimizers(self):  # nothing is trained
        return None

