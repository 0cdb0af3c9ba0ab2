"""A training stage's run: the loop (ddpm/train.py) built from its params sections, with its checkpoints
(ddpm/checkpoint.py), its callbacks (ddpm/callbacks.py) and, when it finishes, its model folder (ddpm/pretrained.py).

    run = build_run("train_mnist", p["train_mnist"], p["diffusion"], p["model"], TrainingData(x), device, world,
                    running=Path("data/resume/train_mnist/checkpoint.pt"))
    run.run(live_dir, output)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .callbacks import LiveLogger, MonitorGrid
from .checkpoint import Checkpointer, fingerprint, load_checkpoint, load_weights
from .device import autocast_dtype, check_training_memory
from .diffusion import Diffusion
from .distributed import World
from .pretrained import save_pretrained
from .train import Callback, TrainConfig, TrainLoop, headline
from .unet import UNet


@dataclass
class TrainingData:
    """What the network learns from: images (N, C, H, W), an optional per-image context (N, D) with the dropout that
    classifier-free guidance trains with, and a per-batch transform (e.g. uint8 → [−1, 1] and random flips)."""
    images: torch.Tensor
    context: torch.Tensor | None = None
    context_dropout: Callable[[torch.Tensor], torch.Tensor] | None = None
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass
class TrainingRun:
    """A loop with its checkpointer and callbacks; `about` is what the model folder's config.json says of it."""
    loop: TrainLoop
    checkpointer: Checkpointer
    monitor: MonitorGrid | None = None
    probe: Callback | None = None  # ddpm/probe.py's QualityProbe: its latest figures go into the model card
    about: dict[str, Any] = field(default_factory=dict)

    def run(self, live_dir: Path, output: Path) -> list[dict[str, float]]:
        """Resume if possible, log to dvclive in live_dir (continuing its history; main process), train, and write the
        finished checkpoint to `output` (the stage's DVC output) with the model folder beside it, removing the
        running one. The dvclive summary (`dvc metrics show`) is the headline: last epoch's loss, minutes."""
        loop, world = self.loop, self.loop.world
        self.checkpointer.carried = Path(live_dir)
        resumed = self.checkpointer.resume(loop)
        if not world.is_main:
            return loop.fit()
        n = sum(q.numel() for q in loop.model.parameters())
        print(f"training on {loop.device} × {world.size} process{'es' if world.size > 1 else ''} "
              f"({len(loop.data)} images, {n / 1e6:.2f} M parameters)", flush=True)
        live = LiveLogger(Path(live_dir), resumed)
        loop.callbacks = [c for c in (self.monitor, self.probe) if c is not None] + [live]
        history = loop.fit()
        live.close(loop)
        self.checkpointer.finish(loop, output)
        if "diffusion" in self.about:  # build_run's runs know their settings: a model folder beside the checkpoint
            self.save_model_folder(Path(output).parent)
        return history

    def save_model_folder(self, folder: Path) -> None:
        """The EMA weights as a self-describing model folder (ddpm/pretrained.py) beside the training checkpoint."""
        loop = self.loop
        training = {**self.about.get("training", {}), "epochs": loop.epoch, "steps": loop.step,
                    "images_seen": loop.epoch * len(loop.data), **headline(loop.history)}  # finished: whole epochs
        about = {**self.about, "training": training,
                 **({"guide": {"step": loop.config.guide_step}} if loop.guide is not None else {})}
        latest = getattr(self.probe, "latest", {})
        probe = {k: v for k, v in latest.items() if k in ("recognizable", "fid_ratio", "coverage")}
        save_pretrained(folder, loop.ema.module, about.pop("diffusion"), sample_shape=tuple(loop.data.shape[1:]),
                        guide=loop.guide, about=about,
                        metrics={**probe, "probe": self.about.get("probe", "")} if probe else {})


def build_run(section: str, recipe: dict[str, Any], diffusion_params: dict[str, Any], model_params: dict[str, Any],
              data: TrainingData, device: torch.device, world: World, *, running: Path,
              resume_from: tuple[Path | None, ...] = (), monitor_context: torch.Tensor | None = None, nrow: int = 8,
              probe: Callback | None = None, init_from: Path | None = None, about: dict[str, Any] | None = None,
              model_section: str = "model", key_sections: dict[str, str] | None = None,
              **fingerprint_extra: Any) -> TrainingRun:
    """The run of training stage `section` (named in its one-line refusals): the UNet (seeded), its monitoring grid,
    its checkpoints and their fingerprint.

    recipe: a train_mnist-like section with runtime keys merged in (device, amp). running: where the running
    checkpoint is kept (not a DVC output: DVC deletes those before it runs the stage); resume_from: finished
    checkpoints a run of these settings may continue (None entries are skipped). monitor_context: the grid's context
    rows (guided with recipe["monitor_guidance"]); None draws recipe["monitor_n"] unconditional images. init_from: a
    checkpoint whose EMA weights a fresh run starts from. about: what the model folder's config.json says of the data
    and context (e.g. {"title": …, "data": "MNIST's 60 000 training digits"}). model_section: the params section
    model_params come from, and key_sections the section each recipe key comes from where the recipe merges
    several (default: all `section`'s), both named in messages.
    """
    images = data.images
    context_dim = 0 if data.context is None else data.context.shape[1]
    diffusion = Diffusion.from_params(diffusion_params)

    def build() -> UNet:
        return UNet.from_params(model_params, images.shape[1], diffusion.T, context_dim)

    check_training_memory(build, tuple(images.shape[1:]), recipe["batch_size"] // world.size, device,
                          f"{section}.batch_size", context=torch.zeros(1, context_dim) if context_dim else None)
    torch.manual_seed(recipe["seed"])
    model = build()
    if init_from is not None:  # a fresh run starts from these weights (a resumed one from its checkpoint)
        load_weights(init_from, model, "ema", diffusion_params, new="context_mlp.").train()
    model = model.to(device)
    autocast = autocast_dtype(recipe["amp"], device)
    monitor = MonitorGrid(diffusion, tuple(images.shape[1:]), recipe["monitor_steps"], recipe["seed"] + 1, autocast,
                          n=recipe.get("monitor_n", 16), context=monitor_context,
                          guidance_scale=recipe.get("monitor_guidance", 0.0), nrow=nrow)
    if recipe["lr_schedule"] == "cosine":  # the schedule's length: other epochs give another run
        fingerprint_extra["cosine_epochs"] = recipe["epochs"]
    if init_from is not None:  # the weights it started from: a longer-trained start is another run
        start = load_checkpoint(init_from)
        fingerprint_extra["init"] = {"from": str(init_from), "epoch": start["epoch"], "step": start["step"]}
    on_device = images.to(device)
    loop = TrainLoop(model, diffusion, on_device, TrainConfig.from_params(recipe, autocast), world=world,
                     transform=data.transform, context=None if data.context is None else data.context.to(device),
                     context_dropout=data.context_dropout)
    last_step = recipe["epochs"] * loop.steps_per_epoch()
    if recipe.get("guide_step", 0) >= last_step:  # at the last step the "bad" model would be the final one
        raise ValueError(f"{section}.guide_step = {recipe['guide_step']}: not before the run's last step ({last_step}); "
                         "lower it (a few hundred steps make a good bad model for autoguidance)")
    loop.saver = Checkpointer(running, fingerprint({"diffusion": diffusion_params, "model": model_params,
                                                    "recipe": {**recipe, "amp": str(autocast)}},
                                                   n_images=len(images), **fingerprint_extra),
                              tuple(p for p in resume_from if p is not None), is_main=world.is_main,
                              labels={"recipe": key_sections or section, "model": model_section})
    info = {**(about or {}), "diffusion": diffusion_params,
            "training": {"stage": section, "batch_size": recipe["batch_size"], "lr": recipe["lr"],
                         "lr_schedule": recipe["lr_schedule"], "ema_decay": recipe["ema_decay"],
                         "precision": str(autocast or torch.float32).removeprefix("torch.")},
            **({"init": fingerprint_extra["init"]} if "init" in fingerprint_extra else {})}
    return TrainingRun(loop, loop.saver, monitor, probe, info)
