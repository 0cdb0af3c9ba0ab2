"""The quality probe: a training callback that scores samples of the EMA weights with the judge after every epoch, so
that dvclive logs quality against minutes of training (train_mnist's monitor_judge_n)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .device import with_autocast
from .diffusion import Diffusion
from .judge import Judge, judge_images
from .evaluation import score_against_floor
from .metrics import fid_clf
from .samplers import sample_seeded
from .train import Callback, TrainLoop, headline


class QualityProbe(Callback):
    """The judge's figures for samples of the EMA weights, drawn during training (after every epoch): n images from
    the same noise each time (seeded per image), scored against the reference, fid_clf also as a multiple of n
    held-out real digits' (the floor at the same N); logged as quality/*, the latest kept in `latest`."""

    def __init__(self, diffusion: Diffusion, judge: Judge, reference: torch.Tensor, real: torch.Tensor, n: int,
                 sampling: dict[str, Any], seed: int, autocast: torch.dtype | None) -> None:
        self.diffusion, self.judge, self.reference, self.n = diffusion, judge, reference, n
        self.sampling, self.seed, self.autocast = sampling, seed, autocast
        self.shape = tuple(real.shape[1:])
        self.floor = fid_clf(judge_images(judge, real[:n]).features, reference)
        self.latest: dict[str, float] = {}

    def __call__(self, ema: nn.Module) -> dict[str, float]:
        device = next(ema.parameters()).device
        x = sample_seeded(self.diffusion, with_autocast(ema, self.autocast), range(self.n), self.shape, self.seed,
                          self.n, device, **self.sampling)
        return score_against_floor(self.judge, self.reference, x, self.floor)

    def on_epoch_end(self, loop: TrainLoop) -> None:
        self.latest = {**self(loop.ema.module), "minutes": headline(loop.history)["minutes"]}
        loop.log({f"quality/{k}": v for k, v in self.latest.items()})
        print(f"epoch {loop.epoch}: " + ", ".join(f"{k} {v:.3f}" for k, v in self.latest.items()), flush=True)
