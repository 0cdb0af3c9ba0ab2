"""The training loop: Adam, EMA, gradient clipping, bf16 autocast, DDP; a loop you can step, with callbacks.

What happens around the steps is not the loop's: checkpoints (ddpm/checkpoint.py's `Checkpointer`), dvclive logs and
the monitoring grid (ddpm/callbacks.py), the quality probe (ddpm/probe.py), the training stage's assembly
(ddpm/recipe.py).

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
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .diffusion import Diffusion
from .distributed import World


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
    def from_params(cls, section: dict[str, Any], autocast: torch.dtype | None) -> "TrainConfig":
        """From a validated training section (train_mnist, train_celeba…): its keys named like a field; the others
        (monitoring, data) are not the loop's. A new training key is a field here and a check in the schema."""
        return cls(**{f.name: section[f.name] for f in fields(cls) if f.name in section}, autocast=autocast)


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


class Callback:
    """What the loop calls on the main process: metrics as they are logged, images, and the end of every epoch (after
    the epoch's checkpoint). ddpm/callbacks.py has the dvclive logger and the monitoring grid, ddpm/probe.py the
    quality probe; a callback overrides what it needs."""

    def on_log(self, loop: "TrainLoop", metrics: dict[str, float]) -> None:
        pass

    def on_image(self, loop: "TrainLoop", name: str, image: torch.Tensor, nrow: int) -> None:
        pass

    def on_epoch_end(self, loop: "TrainLoop") -> None:
        pass


class Saver(Protocol):
    """Where the loop's state goes after every epoch (ddpm/checkpoint.py's Checkpointer)."""
    path: Path  # named when a run stops: the last good checkpoint

    def save(self, loop: "TrainLoop") -> None: ...


class TrainLoop:
    """Trains the noise predictor (ε or v) on a dataset tensor that lives on the device.

    data: images (N, C, H, W) already on the training device (no DataLoader): in [−1, 1], or anything that `transform`
    turns into a batch in [−1, 1] (e.g. uint8 faces). context: an optional per-image context (N, D) passed to the model
    as `context`, through `context_dropout` (classifier-free guidance's p_uncond). Drive it with `fit()` (until
    config.epochs are complete) or `steps()` (one optimizer step per item, the epoch's end included in the step that
    ends it); `state()`/`load_state()` are what a checkpoint holds.
    """

    def __init__(self, model: nn.Module, diffusion: Diffusion, data: torch.Tensor, config: TrainConfig, *,
                 world: World = World(), transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 context: torch.Tensor | None = None, context_dropout: Callable | None = None,
                 callbacks: list[Callback] | None = None, saver: Saver | None = None) -> None:
        self.model, self.diffusion, self.data, self.config, self.world = model, diffusion, data, config, world
        if world.size > 1:  # gradients averaged over the ranks; the EMA, the optimizer and checkpoints see `model`
            ids = [data.device.index] if data.device.type == "cuda" else None
            self.net: nn.Module = DistributedDataParallel(model, device_ids=ids)
        else:
            self.net = model
        self.transform, self.context, self.context_dropout = transform, context, context_dropout
        self.callbacks = list(callbacks or [])
        self.saver = saver
        self.device = data.device
        self.ema = EMA(model, config.ema_decay, config.ema_power)
        self.opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        self.epoch = 0  # completed epochs
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.guide: dict[str, torch.Tensor] | None = None  # the EMA weights after config.guide_step steps
        torch.manual_seed(config.seed)

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs (no RNG states: every draw is derived from (seed, epoch, rank))."""
        return {"epoch": self.epoch, "step": self.step, "model": self.model.state_dict(),
                "ema": self.ema.module.state_dict(), "ema_n": self.ema.n_averaged, "optimizer": self.opt.state_dict(),
                "history": self.history, **({"guide": self.guide} if self.guide is not None else {})}

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.module.load_state_dict(state["ema"])
        self.ema.n_averaged.copy_(state["ema_n"])
        self.opt.load_state_dict(state["optimizer"])
        self.epoch, self.step, self.history = state["epoch"], state["step"], state["history"]
        self.guide = state.get("guide")

    # -- one step ------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Linear warm-up to lr over warmup_steps, then constant (Ho et al.) or a cosine down to 0 at the run's last
        step (epochs × steps per epoch): the peak can be higher when the rate comes down again."""
        c = self.config
        warm = min(1.0, (step + 1) / max(1, c.warmup_steps))
        if c.lr_schedule == "constant" or step < c.warmup_steps:
            return c.lr * warm
        total = c.epochs * self.steps_per_epoch()
        progress = min(1.0, (step - c.warmup_steps) / max(1, total - c.warmup_steps))
        return c.lr * 0.5 * (1 + math.cos(math.pi * progress))

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data) / self.config.batch_size)

    def train_step(self, x0: torch.Tensor, t: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                   weight: float = 1.0, **model_kwargs: Any) -> float:
        """One optimizer step on this rank's share x0 of a global batch; returns the global batch's mean loss.

        weight = share size · world size / global batch size, so that DDP's mean of the ranks' gradients is
        the gradient of the global batch's mean loss (1 in one process).
        """
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        amp = (torch.autocast(self.device.type, dtype=self.config.autocast)
               if self.config.autocast else contextlib.nullcontext())
        with amp:
            loss = self.diffusion.loss(self.net, x0, t=t, noise=noise, **model_kwargs) * weight
        global_loss = self.world.mean(loss.detach())  # every rank sees a NaN anywhere, so all stop together
        if not torch.isfinite(global_loss):
            raise FloatingPointError(f"loss is {global_loss.item()} at step {self.step}; the last good checkpoint "
                                     f"({self.saver.path if self.saver else 'none'}) is kept; lower the stage's lr or set "
                                     "runtime.amp: off")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.opt.step()
        self.ema.update_parameters(self.model)
        self.step += 1
        if self.step == self.config.guide_step:  # kept in every later checkpoint; a resumed run replays up to here
            self.guide = {k: v.detach().to("cpu", copy=True) for k, v in self.ema.module.state_dict().items()}
        return global_loss.item()

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The image order of an epoch: a permutation seeded by (seed, epoch), so resuming replays it."""
        g = torch.Generator().manual_seed(derived_seed(self.config.seed, epoch))
        return torch.randperm(len(self.data), generator=g).to(self.device)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The global batches of an epoch: (image indices, times t, noise ε), drawn from generators every rank seeds
        alike from (seed, epoch), so any number of processes, and a resumed run, see the same batches."""
        batch, world = self.config.batch_size, self.world
        steps = self.steps_per_epoch()
        if world.size > 1 and len(self.data) % batch and len(self.data) % batch < world.size:
            steps -= 1  # a last batch smaller than the world would leave a rank with nothing
        order = self.epoch_order(epoch)
        shared = torch.Generator(self.device).manual_seed(derived_seed(self.config.seed, epoch, 0))  # t, ε
        for i in range(steps):
            idx = order[i * batch:(i + 1) * batch]
            t = torch.randint(0, self.diffusion.T, (len(idx),), generator=shared, device=self.device)
            yield idx, t, torch.randn((len(idx), *self.data.shape[1:]), generator=shared, device=self.device)

    # -- the loop ------------------------------------------------------------------------
    def steps(self) -> Iterator[float]:
        """Train until config.epochs are complete, yielding each step's loss; an epoch's end (its record, the saver,
        the callbacks) runs inside the step that ends it."""
        self.model.train()
        world = self.world
        while self.epoch < self.config.epochs:
            t0, window, total, pending = time.time(), [], 0.0, None
            torch.manual_seed(derived_seed(self.config.seed, self.epoch, world.rank + 1))  # dropout, flips: per rank
            bar = tqdm(self.batches(self.epoch), total=self.steps_per_epoch(),
                       desc=f"epoch {self.epoch + 1}/{self.config.epochs}", leave=False, disable=not world.is_main)
            for idx, t, noise in bar:
                if pending is not None:  # the previous step's: the last one is yielded after the epoch's end
                    yield pending
                mine = world.share(len(idx))
                kwargs = {}
                if self.context is not None:
                    c = self.context[idx[mine]]
                    kwargs["context"] = self.context_dropout(c) if self.context_dropout else c
                x0 = self.data[idx[mine]] if self.transform is None else self.transform(self.data[idx[mine]])
                weight = (mine.stop - mine.start) * world.size / len(idx)
                loss = self.train_step(x0, t=t[mine], noise=noise[mine], weight=weight, **kwargs)
                window.append(loss)
                total += loss * len(idx)
                if len(window) == self.config.log_every:
                    bar.set_postfix(loss=f"{sum(window) / len(window):.4f}")
                    self.log({"train/loss": sum(window) / len(window)})
                    window = []
                pending = loss
            if window:
                self.log({"train/loss": sum(window) / len(window)})
            self._end_epoch(total, time.time() - t0)
            if pending is not None:
                yield pending

    def fit(self) -> list[dict[str, float]]:
        """Train until config.epochs are complete; returns the per-epoch history."""
        for _ in self.steps():
            pass
        return self.history

    def _end_epoch(self, total_loss: float, seconds: float) -> None:
        self.epoch += 1
        record = {"epoch": self.epoch, "step": self.step, "loss": total_loss / len(self.data),
                  "seconds": seconds, "images_per_s": len(self.data) / seconds}
        self.history.append(record)
        self.log({"epoch/loss": record["loss"], "epoch/images_per_s": record["images_per_s"]})
        if self.saver is not None:
            self.saver.save(self)  # before the callbacks, so that a failing or killed monitor loses no training
        if self.world.is_main and self.callbacks:
            for callback in self.callbacks:
                callback.on_epoch_end(self)
            if self.saver is not None:
                self.saver.save(self)  # again, with the epoch's logs (dvclive's files) in it
        if self.world.is_main:
            print(f"epoch {self.epoch}: loss {record['loss']:.4f}, {record['images_per_s']:.0f} images/s "
                  f"({self.world.size} process{'es' if self.world.size > 1 else ''})")

    def log(self, metrics: dict[str, float]) -> None:
        """Hand metrics to the callbacks (main process only)."""
        if self.world.is_main:
            for callback in self.callbacks:
                callback.on_log(self, metrics)

    def log_image(self, name: str, image: torch.Tensor, nrow: int) -> None:
        if self.world.is_main:
            for callback in self.callbacks:
                callback.on_image(self, name, image, nrow)


def headline(history: list[dict[str, float]]) -> dict[str, float]:
    """A training's few figures for `dvc metrics show`: the last epoch's loss and the minutes of training."""
    last = history[-1] if history else {"loss": float("nan")}
    return {"loss": last["loss"], "minutes": sum(h["seconds"] for h in history) / 60}


def derived_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A seed for (run seed, epoch, stream): stream 0 is shared by every rank, stream r + 1 is rank r's own."""
    return (seed * 100_003 + epoch) * 1_009 + stream
