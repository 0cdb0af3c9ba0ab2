"""What a training stage hangs on the loop (ddpm/train.py's Callback): dvclive's log, the monitoring grid sampled after
every epoch, and the quality probe (the judge's figures for samples of the EMA weights: quality against minutes)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from dvclive import Live
from torch import nn

from .device import with_autocast
from .diffusion import Diffusion
from .guidance import ClassifierFreeGuidance
from .io import image_grid_pil
from .judge import Judge, judge_images
from .metrics import fid_clf, score
from .samplers import image_generators, sample
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
        x = sample(self.diffusion, with_autocast(ema, self.autocast), self.n, self.shape, device=device,
                   generator=image_generators(self.seed, range(self.n), device), **self.sampling)
        out = judge_images(self.judge, x)
        figures = score(out.probs, out.features, self.reference)
        return {**figures, "fid_ratio": figures["fid_clf"] / self.floor}

    def on_epoch_end(self, loop: TrainLoop) -> None:
        self.latest = {**self(loop.ema.module), "minutes": headline(loop.history)["minutes"]}
        loop.log({f"quality/{k}": v for k, v in self.latest.items()})
        print(f"epoch {loop.epoch}: " + ", ".join(f"{k} {v:.3f}" for k, v in self.latest.items()), flush=True)
