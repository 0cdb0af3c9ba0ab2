"""The training loop: Adam, EMA, gradient clipping, bf16 autocast, checkpoints that resume, dvclive logs, DDP.

Every random draw is a function of (seed, epoch, rank): the epoch's image order and the t and ε of
each global batch come from generators every rank seeds alike (each rank takes its share of the
batch), dropout and per-rank augmentation from a stream seeded per (epoch, rank). So a run killed
mid-epoch resumes exactly, and N processes compute the same steps as one (up to summation order)
when nothing draws per rank (no dropout, flips or context dropout); with them, equal in distribution.
"""
from __future__ import annotations

import contextlib
import copy
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from dvclive import Live
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, load_checkpoint, load_weights, previous_path, save_checkpoint
from .device import autocast_dtype, check_training_memory, with_autocast
from .diffusion import Diffusion
from .distributed import World
from .guidance import ClassifierFreeGuidance
from .io import image_grid_pil, save_bytes
from .pretrained import save_pretrained
from .samplers import sample
from .unet import UNet


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 2e-4
    warmup_steps: int = 500
    ema_decay: float = 0.9995
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    autocast: torch.dtype | None = None
    lr_schedule: str = "constant"  # after the warm-up: constant (Ho et al.) or cosine (to 0 at the last step)
    ema_power: float = 0.0         # 0: EMA warm-up d = (1+n)/(10+n); > 0: d = 1 − (1+n)^(−power) (Karras et al.)
    guide_step: int = 0            # > 0: the EMA weights after this step are kept as autoguidance's bad model

    @classmethod
    def from_params(cls, tp: dict[str, Any], autocast: torch.dtype | None) -> "TrainConfig":
        """From a validated `train`-like params section."""
        return cls(epochs=tp["epochs"], batch_size=tp["batch_size"], lr=tp["lr"], warmup_steps=tp["warmup_steps"],
                   ema_decay=tp["ema_decay"], grad_clip=tp["grad_clip"], seed=tp["seed"], log_every=tp["log_every"],
                   autocast=autocast, lr_schedule=tp["lr_schedule"], ema_power=tp["ema_power"],
                   guide_step=tp.get("guide_step", 0))


class EMA:
    """An exponential moving average of a model's weights with warm-up: the first update copies θ, the n-th after it
    sets θ̄ ← d·θ̄ + (1−d)·θ with d = min(decay, (1+n)/(10+n)), or, with power > 0, d = min(decay, 1 − (1+n)^(−power)):
    an average over a growing share of training, useful after a few hundred steps (diffusers' inverse-gamma EMA with
    γ = 1). The decay is computed on the host once per step and applied with one fused lerp over all tensors."""

    def __init__(self, model: nn.Module, decay: float, power: float = 0.0) -> None:
        self.module = copy.deepcopy(model).eval()  # only ever sampled from: no dropout
        self.module.requires_grad_(False)
        self.decay, self.power = decay, power
        self.n_averaged = torch.zeros((), dtype=torch.long)  # updates so far (saved in checkpoints)

    def decay_after(self, n: int) -> float:
        warm = 1 - (1 + n) ** -self.power if self.power > 0 else (1 + n) / (10 + n)
        return min(self.decay, warm)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        mine = [*self.module.parameters(), *(b for b in self.module.buffers() if b.dtype.is_floating_point)]
        theirs = [*model.parameters(), *(b for b in model.buffers() if b.dtype.is_floating_point)]
        n = int(self.n_averaged)
        if n == 0:
            torch._foreach_copy_(mine, [t.detach() for t in theirs])
        else:
            torch._foreach_lerp_(mine, [t.detach() for t in theirs], 1 - self.decay_after(n))
        self.n_averaged += 1


class Trainer:
    """Trains the noise predictor (ε or v) on a dataset tensor that lives on the device; checkpoints every epoch.

    data: images (N, C, H, W) already on the training device (no DataLoader): in [−1, 1], or anything
    that `transform` turns into a batch in [−1, 1] (e.g. uint8 faces).
    context: an optional per-image context tensor (N, D) passed to the model as `context`.
    fingerprint: what must match for a checkpoint to be resumed (architecture, data, seed…).
    checkpoint: where the running checkpoint is saved every epoch (a killed run resumes from it); resume_from: finished
    checkpoints to continue from when that one is missing or of other settings (e.g. the stage's last output, which
    DVC keeps in its cache).
    """

    def __init__(
        self, model: nn.Module, diffusion: Diffusion, data: torch.Tensor, cfg: TrainConfig,
        checkpoint: Path, fingerprint: dict[str, Any], live: Any = None,
        monitor: "MonitorGrid | None" = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None, world: World = World(),
        probe: Callable[[nn.Module], dict[str, float]] | None = None, resume_from: tuple[Path, ...] = (),
    ) -> None:
        self.model, self.diffusion, self.data, self.cfg, self.world = model, diffusion, data, cfg, world
        if world.size > 1:  # gradients averaged over the ranks; the EMA, the optimizer and checkpoints see `model`
            ids = [data.device.index] if data.device.type == "cuda" else None
            self.net: nn.Module = DistributedDataParallel(model, device_ids=ids)
        else:
            self.net = model
        self.saves = 0
        self.transform = transform  # per batch, e.g. uint8 → [−1, 1] and random flips
        self.checkpoint, self.fingerprint, self.live, self.monitor = Path(checkpoint), fingerprint, live, monitor
        self.resume_from = tuple(Path(p) for p in resume_from)
        self.probe = probe  # after every epoch: figures of merit of the EMA weights, logged as quality/*
        self.live_dir: Path | None = None  # dvclive's folder, set by run()
        self.about: dict[str, Any] = {}  # for the model folder's config.json: data, context, recipe (make_trainer's)
        self.quality: dict[str, float] = {}  # the probe's figures after the last epoch
        self.device = data.device
        self.ema = EMA(model, cfg.ema_decay, cfg.ema_power)
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.epoch = 0  # completed epochs
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.guide: dict[str, torch.Tensor] | None = None  # the EMA weights after cfg.guide_step steps
        torch.manual_seed(cfg.seed)

    # -- checkpoints ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint, "epoch": self.epoch,
            "step": self.step, "model": self.model.state_dict(), "ema": self.ema.module.state_dict(),
            "ema_n": self.ema.n_averaged, "optimizer": self.opt.state_dict(), "history": self.history,
            **({"guide": self.guide} if self.guide is not None else {}),
            "live": folder_files(self.live_dir),  # dvclive's history so far: a resumed run continues it
        }  # no RNG states: every draw is derived from (seed, epoch, rank)

    def save(self) -> None:
        """Write the checkpoint (rank 0 only)."""
        if self.world.is_main:
            save_checkpoint(self.state(), self.checkpoint)
            self.saves += 1

    def try_resume(self) -> bool:
        """Continue the running checkpoint (else the copy before it) if it was made with the same fingerprint, else the
        first of `resume_from` that was; put back the dvclive history it carries (DVC deletes a stage's outputs,
        dvclive's included, before it runs the stage)."""
        state, path = self._running_state(), self.checkpoint
        if state is not None and state.get("fingerprint") != self.fingerprint:  # replaced by this run's first save
            self._say(f"{path}: a run with other settings ({differing(state.get('fingerprint'), self.fingerprint)}); "
                      "not resumed")
            state = None
        for path in self.resume_from if state is None else ():
            try:
                found = load_checkpoint(path) if path.exists() else {}
            except CheckpointError as e:
                self._say(f"warning: {e}; not resumed")
                continue
            if found.get("fingerprint") == self.fingerprint:
                state = found
                break
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.ema.module.load_state_dict(state["ema"])
        self.ema.n_averaged.copy_(state["ema_n"])
        self.opt.load_state_dict(state["optimizer"])
        self.epoch, self.step, self.history = state["epoch"], state["step"], state["history"]
        self.guide = state.get("guide")
        if self.world.is_main and self.live_dir is not None:
            restore_files(self.live_dir, state.get("live", {}))
        self._say(f"{path}: resuming after epoch {self.epoch} (step {self.step})")
        return True

    def _running_state(self) -> dict[str, Any] | None:
        """The running checkpoint, or the copy before it where the latest is damaged; None when there is none."""
        for path in (self.checkpoint, previous_path(self.checkpoint)):
            if not path.exists():
                continue
            try:
                return load_checkpoint(path)
            except CheckpointError as e:
                if path != self.checkpoint or not previous_path(path).exists():
                    raise
                self._say(f"warning: {e}; falling back to {previous_path(path)}")
        return None

    def _say(self, message: str) -> None:
        if self.world.is_main:  # one line per run, not one per process
            print(message, flush=True)

    # -- the loop ------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Linear warm-up to lr over warmup_steps, then constant (Ho et al.) or a cosine down to 0 at the run's last
        step (epochs × steps per epoch): the peak can be higher when the rate comes down again."""
        warm = min(1.0, (step + 1) / max(1, self.cfg.warmup_steps))
        if self.cfg.lr_schedule == "constant" or step < self.cfg.warmup_steps:
            return self.cfg.lr * warm
        total = self.cfg.epochs * math.ceil(len(self.data) / self.cfg.batch_size)
        progress = min(1.0, (step - self.cfg.warmup_steps) / max(1, total - self.cfg.warmup_steps))
        return self.cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))

    def train_step(self, x0: torch.Tensor, t: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                   weight: float = 1.0, **model_kwargs: Any) -> float:
        """One optimizer step on this rank's share x0 of a global batch; returns the global batch's mean loss.

        weight = share size · world size / global batch size, so that DDP's mean of the ranks' gradients is
        the gradient of the global batch's mean loss (1 in one process).
        """
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        amp = (torch.autocast(self.device.type, dtype=self.cfg.autocast)
               if self.cfg.autocast else contextlib.nullcontext())
        with amp:
            loss = self.diffusion.loss(self.net, x0, t=t, noise=noise, **model_kwargs) * weight
        global_loss = self.world.mean(loss.detach())  # every rank sees a NaN anywhere, so all stop together
        if not torch.isfinite(global_loss):
            raise FloatingPointError(f"loss is {global_loss.item()} at step {self.step}; the last good checkpoint "
                                     f"({self.checkpoint}) is kept; lower train.lr or set train.amp=off")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.ema.update_parameters(self.model)
        self.step += 1
        if self.step == self.cfg.guide_step:  # kept in every later checkpoint; a resumed run replays up to here
            self.guide = {k: v.detach().to("cpu", copy=True) for k, v in self.ema.module.state_dict().items()}
        return global_loss.item()

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The image order of an epoch: a permutation seeded by (seed, epoch), so resuming replays it."""
        g = torch.Generator().manual_seed(derived_seed(self.cfg.seed, epoch))
        return torch.randperm(len(self.data), generator=g).to(self.device)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The global batches of an epoch: (image indices, times t, noise ε), drawn from generators every rank seeds
        alike from (seed, epoch), so any number of processes, and a resumed run, see the same batches."""
        batch, world = self.cfg.batch_size, self.world
        steps = math.ceil(len(self.data) / batch)
        if world.size > 1 and len(self.data) % batch and len(self.data) % batch < world.size:
            steps -= 1  # a last batch smaller than the world would leave a rank with nothing
        order = self.epoch_order(epoch)
        shared = torch.Generator(self.device).manual_seed(derived_seed(self.cfg.seed, epoch, 0))  # t, ε
        for i in range(steps):
            idx = order[i * batch:(i + 1) * batch]
            t = torch.randint(0, self.diffusion.T, (len(idx),), generator=shared, device=self.device)
            yield idx, t, torch.randn((len(idx), *self.data.shape[1:]), generator=shared, device=self.device)

    def fit(self, context: torch.Tensor | None = None, context_dropout: Callable | None = None) -> list[dict[str, float]]:
        """Train until cfg.epochs are complete; returns the per-epoch history."""
        self.model.train()
        world = self.world
        while self.epoch < self.cfg.epochs:
            t0, window, total = time.time(), [], 0.0
            torch.manual_seed(derived_seed(self.cfg.seed, self.epoch, world.rank + 1))  # dropout, flips: per rank
            bar = tqdm(self.batches(self.epoch), total=math.ceil(len(self.data) / self.cfg.batch_size),
                       desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", leave=False, disable=not world.is_main)
            for idx, t, noise in bar:
                mine = world.share(len(idx))
                kwargs = {}
                if context is not None:
                    c = context[idx[mine]]
                    kwargs["context"] = context_dropout(c) if context_dropout else c
                x0 = self.data[idx[mine]] if self.transform is None else self.transform(self.data[idx[mine]])
                weight = (mine.stop - mine.start) * world.size / len(idx)
                loss = self.train_step(x0, t=t[mine], noise=noise[mine], weight=weight, **kwargs)
                window.append(loss)
                total += loss * len(idx)
                if len(window) == self.cfg.log_every:
                    bar.set_postfix(loss=f"{sum(window) / len(window):.4f}")
                    self._log({"train/loss": sum(window) / len(window)})
                    window = []
            if window:
                self._log({"train/loss": sum(window) / len(window)})
            self.epoch += 1
            record = {"epoch": self.epoch, "step": self.step, "loss": total / len(self.data),
                      "seconds": time.time() - t0, "images_per_s": len(self.data) / (time.time() - t0)}
            self.history.append(record)
            self._log({"epoch/loss": record["loss"], "epoch/images_per_s": record["images_per_s"]})
            self.save()  # before monitoring, so that a failing or killed monitor loses no training
            if self.monitor is not None and world.is_main:
                grid = self.monitor(self.ema.module)
                if self.live is not None:
                    self.live.log_image(f"monitor/epoch_{self.epoch:03d}.png", image_grid_pil(grid, nrow=self.monitor.nrow))
            if self.probe is not None and world.is_main:  # the judge's figures against minutes of training
                quality = {**self.probe(self.ema.module), "minutes": sum(h["seconds"] for h in self.history) / 60}
                self.quality = quality
                self._log({f"quality/{k}": v for k, v in quality.items()})
                print(f"epoch {self.epoch}: " + ", ".join(f"{k} {v:.3f}" for k, v in quality.items()))
            if self.live is not None:
                self.live.summary = self.headline()  # not every logged series: the terminal table stays narrow
                self.live.sync()
                self.save()  # again, with the epoch's monitoring grid and quality in its history
            if world.is_main:
                print(f"epoch {self.epoch}: loss {record['loss']:.4f}, {record['images_per_s']:.0f} images/s "
                      f"({world.size} process{'es' if world.size > 1 else ''})")
        return self.history

    def run(self, live_dir: Path, output: Path | None = None, **fit_kwargs: Any) -> list[dict[str, float]]:
        """Resume if possible, log to dvclive in live_dir (continuing its history; rank 0), train, and write the
        finished checkpoint to `output` (the stage's DVC output), removing the running one. The
        dvclive summary (`dvc metrics show`) holds the headline: final epoch loss, epochs, minutes of training."""
        self.live_dir = Path(live_dir)
        resumed = self.try_resume()
        if not self.world.is_main:
            return self.fit(**fit_kwargs)
        n = sum(q.numel() for q in self.model.parameters())
        self._say(f"training on {self.device} × {self.world.size} process{'es' if self.world.size > 1 else ''} "
                  f"({len(self.data)} images, {n / 1e6:.2f} M parameters)")
        self.live = Live(str(live_dir), resume=resumed, dvcyaml=False, save_dvc_exp=False)
        history = self.fit(**fit_kwargs)
        self.live.summary = self.headline()
        self.live.make_summary()
        if output is not None:  # the finished run: DVC caches it; the running copy is no longer needed
            save_checkpoint(self.state(), output)
            if "diffusion" in self.about:  # make_trainer's trainers know their settings: a model folder beside it
                self.save_model_folder(Path(output).parent)
            for path in (self.checkpoint, previous_path(self.checkpoint)):
                path.unlink(missing_ok=True)
        return history

    def save_model_folder(self, folder: Path) -> None:
        """The EMA weights as a self-describing model folder (ddpm/pretrained.py) beside the training checkpoint."""
        training = {**self.about.get("training", {}), "epochs": self.epoch, "steps": self.step,
                    "images_seen": self.epoch * len(self.data), **self.headline()}  # a finished run: whole epochs
        about = {**self.about, "training": training,
                 **({"guide": {"step": self.cfg.guide_step}} if self.guide is not None else {})}
        probe = {k: v for k, v in self.quality.items() if k in ("recognizable", "fid_ratio", "coverage")}
        save_pretrained(folder, self.ema.module, about.pop("diffusion"), sample_shape=tuple(self.data.shape[1:]),
                        guide=self.guide, about=about, metrics={**probe, "probe": self.about.get("probe", "")} if probe else {})

    def headline(self) -> dict[str, float]:
        """The training's few figures for `dvc metrics show`."""
        last = self.history[-1] if self.history else {"loss": float("nan")}
        return {"loss": last["loss"], "minutes": sum(h["seconds"] for h in self.history) / 60}

    def _log(self, metrics: dict[str, float]) -> None:
        if self.live is None:
            return
        self.live.step = self.step
        for name, value in metrics.items():
            self.live.log_metric(name, value)


def derived_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A seed for (run seed, epoch, stream): stream 0 is shared by every rank, stream r + 1 is rank r's own."""
    return (seed * 100_003 + epoch) * 1_009 + stream


VOLATILE = {"epochs", "log_every", "monitor_n", "monitor_steps", "monitor_judge_n", "device", "monitor_guidance",
            "monitor_prompts", "nproc"}  # run length, logging, placement: a run may resume with other values
# Keys added after a release, at the value that does what that release did: left out of the fingerprint there, so a
# checkpoint of that release still resumes (0.4 added model.conditioning, "add" being 0.3's residual block; 0.5
# train_mnist.guide_step, 0 taking no snapshot).
ADDED_LATER = {"conditioning": "add", "guide_step": 0}


def fingerprint(sections: dict[str, dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """What must match for a checkpoint to be continued: every setting that changes the result (not the run length,
    logging or the number of processes). Give `amp` as the precision it resolves to, so that amp: auto and off
    on a CPU without native bf16 (the same arithmetic) count as equal."""
    def kept(k: str, v: Any) -> bool:
        return k not in VOLATILE and not (k in ADDED_LATER and v == ADDED_LATER[k])
    return {**extra, **{name: {k: v for k, v in s.items() if kept(k, v)} for name, s in sections.items()}}


def differing(old: Any, new: dict[str, Any]) -> str:
    """The settings that differ between two fingerprints, e.g. 'train.lr 0.0002 → 0.0001'."""
    if not isinstance(old, dict):
        return "a checkpoint of an older release"
    changes = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += [f"{name}.{k} {a.get(k)!r} → {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            changes.append(f"{name} {a!r} → {b!r}")
    return ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")


def folder_files(folder: Path | None) -> dict[str, bytes]:
    """Every file under `folder`, by its path relative to it (empty when there is none)."""
    if folder is None or not folder.exists():
        return {}
    return {f.relative_to(folder).as_posix(): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def restore_files(folder: Path, files: dict[str, bytes]) -> None:
    """Make `folder` hold exactly `files` (as folder_files returned them): what a killed run logged after its last
    checkpoint goes, and so does what DVC had deleted comes back."""
    shutil.rmtree(folder, ignore_errors=True)
    for name, data in files.items():
        save_bytes(data, folder / name)


@dataclass
class MonitorGrid:
    """The grid sampled from the EMA weights after every epoch: the same noise each time (seed), DDIM (η = 0).

    context: one row per image (a digit's one-hot, a CLIP text embedding), guided with weight `guidance`;
    None samples `n` unconditional images.
    """
    diffusion: Diffusion
    shape: tuple[int, ...]
    steps: int
    seed: int
    autocast: torch.dtype | None = None
    n: int = 16
    context: torch.Tensor | None = None
    guidance: float = 0.0
    nrow: int = 8

    def __call__(self, ema: nn.Module) -> torch.Tensor:
        device = next(ema.parameters()).device
        model = with_autocast(ema, self.autocast)
        g = torch.Generator(device).manual_seed(self.seed)
        if self.context is None:
            return sample(self.diffusion, model, self.n, self.shape, sampler="ddim", steps=self.steps, generator=g,
                          device=device)
        guided = ClassifierFreeGuidance(model, self.context.to(device), self.guidance)
        return sample(self.diffusion, guided, len(self.context), self.shape, sampler="ddim", steps=self.steps,
                      generator=g, device=device).cpu()


def make_trainer(recipe: dict[str, Any], diffusion_params: dict[str, Any], model_params: dict[str, Any],
                 data: torch.Tensor, checkpoint: Path, device: torch.device, world: World, *, context_dim: int = 0,
                 monitor_context: torch.Tensor | None = None, nrow: int = 8,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 probe: Callable[[nn.Module], dict[str, float]] | None = None, section: str = "train_mnist",
                 init_from: Path | None = None, resume_from: tuple[Path | None, ...] = (),
                 about: dict[str, Any] | None = None, **fingerprint_extra: Any) -> Trainer:
    """A Trainer for a training stage's params: the UNet (seeded), its monitoring grid and its resume fingerprint.

    recipe: a train_mnist-like section with runtime keys merged in (device, amp). monitor_context: the grid's
    context rows (then guided with recipe["monitor_guidance"]); None draws recipe["monitor_n"] unconditional images.
    section: the params section the recipe comes from, named in its one-line refusals. resume_from: finished
    checkpoints a run of these settings may continue (None entries are skipped), see Trainer. about: what the model
    folder's config.json says of the data and context (e.g. {"title": …, "data": "MNIST's 60 000 training digits"}).
    """
    diffusion = Diffusion.from_params(diffusion_params)
    def build() -> UNet:
        return UNet.from_params(model_params, data.shape[1], diffusion.T, context_dim)

    check_training_memory(build, tuple(data.shape[1:]), recipe["batch_size"] // world.size, device,
                          f"{section}.batch_size", context=torch.zeros(1, context_dim) if context_dim else None)
    torch.manual_seed(recipe["seed"])
    model = build()
    if init_from is not None:  # a fresh run starts from these weights (a resumed one from its checkpoint)
        load_weights(init_from, model, "ema", diffusion_params, new="context_mlp.").train()
    model = model.to(device)
    autocast = autocast_dtype(recipe["amp"], device)
    monitor = MonitorGrid(diffusion, tuple(data.shape[1:]), recipe["monitor_steps"], recipe["seed"] + 1, autocast,
                          n=recipe.get("monitor_n", 16), context=monitor_context,
                          guidance=recipe.get("monitor_guidance", 0.0), nrow=nrow)
    last_step = recipe["epochs"] * math.ceil(len(data) / recipe["batch_size"])
    if recipe.get("guide_step", 0) >= last_step:  # at the last step the "bad" model would be the final one
        raise ValueError(f"{section}.guide_step = {recipe['guide_step']}: not before the run's last step ({last_step}); "
                         "lower it (a few hundred steps make a good bad model for autoguidance)")
    if recipe["lr_schedule"] == "cosine":  # the schedule's length: other epochs give another run
        fingerprint_extra["cosine_epochs"] = recipe["epochs"]
    if init_from is not None:  # the weights it started from: a longer-trained start is another run
        start = load_checkpoint(init_from)
        fingerprint_extra["init"] = {"from": str(init_from), "epoch": start["epoch"], "step": start["step"]}
    trainer = Trainer(model, diffusion, data.to(device), TrainConfig.from_params(recipe, autocast), checkpoint,
                   fingerprint({"diffusion": diffusion_params, "model": model_params,
                                "recipe": {**recipe, "amp": str(autocast)}}, n_images=len(data), **fingerprint_extra),
                   monitor=monitor, transform=transform, world=world, probe=probe,
                   resume_from=tuple(p for p in resume_from if p is not None))
    trainer.about = {**(about or {}), "diffusion": diffusion_params,
                     "training": {"stage": section, "batch_size": recipe["batch_size"], "lr": recipe["lr"],
                                  "lr_schedule": recipe["lr_schedule"], "ema_decay": recipe["ema_decay"],
                                  "precision": str(autocast or torch.float32).removeprefix("torch.")},
                     **({"init": fingerprint_extra["init"]} if "init" in fingerprint_extra else {})}
    return trainer
