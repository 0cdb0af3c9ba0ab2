"""What every training stage hangs on the loop (ddpm/train.py's Callback): dvclive's log and the monitoring grid sampled
after every epoch. (The quality probe, which needs the judge, is ddpm/probe.py.)"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from dvclive import Live
from torch import nn

from .device import with_autocast
from .diffusion import Diffusion
from .guidance import ClassifierFreeGuidance
from .io import image_grid_pil
from .samplers import sample
from .train import Callback, TrainLoop, headline


class LiveLogger(Callback):
    """dvclive in `folder`, continuing its history when the run resumed; the summary (`dvc metrics show`) is the
    training's headline (ddpm.train.headline), not every logged series, so that the terminal table stays narrow."""

    def __init__(self, folder: Path, resume: bool) -> None:
        self.live = Live(str(folder), resume=resume, dvcyaml=False, save_dvc_exp=False)

    def on_log(self, loop: TrainLoop, metrics: dict[str, float]) -> None:
        self.live.step = loop.step
        for name, value in metrics.items():
            self.live.log_metric(name, value)

    def on_image(self, loop: TrainLoop, name: str, image: torch.Tensor, nrow: int) -> None:
        self.live.log_image(name, image_grid_pil(image, nrow=nrow))

    def on_epoch_end(self, loop: TrainLoop) -> None:
        self.live.summary = headline(loop.history)
        self.live.sync()

    def close(self, loop: TrainLoop) -> None:
        self.live.summary = headline(loop.history)
        self.live.make_summary()


@dataclass
class MonitorGrid(Callback):
    """The grid sampled from the EMA weights after every epoch: the same noise each time (seed), DDIM (η = 0).

    context: one row per image (a digit's one-hot, a CLIP text embedding), guided with scale `guidance_scale`;
    None samples `n` unconditional images.
    """
    diffusion: Diffusion
    shape: tuple[int, ...]
    steps: int
    seed: int
    autocast: torch.dtype | None = None
    n: int = 16
    context: torch.Tensor | None = None
    guidance_scale: float = 0.0
    nrow: int = 8

    def __call__(self, ema: nn.Module) -> torch.Tensor:
        device = next(ema.parameters()).device
        model = with_autocast(ema, self.autocast)
        g = torch.Generator(device).manual_seed(self.seed)
        if self.context is None:
            return sample(self.diffusion, model, self.n, self.shape, sampler="ddim", steps=self.steps, generator=g,
                          device=device)
        guided = ClassifierFreeGuidance(model, self.context.to(device), self.guidance_scale)
        return sample(self.diffusion, guided, len(self.context), self.shape, sampler="ddim", steps=self.steps,
                      generator=g, device=device).cpu()

    def on_epoch_end(self, loop: TrainLoop) -> None:
        loop.log_image(f"monitor/epoch_{loop.epoch:03d}.png", self(loop.ema.module), self.nrow)
