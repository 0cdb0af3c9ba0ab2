"""The peer: diffusers' documented unconditional recipe, as its example train_unconditional.py sets it up.

`UNet2DModel` (here of our UNet's channels, levels and attention: the same parameter count), `DDPMScheduler` with
1000 linear-β steps, AdamW (lr 1e-4, β = (0.95, 0.999), weight decay 1e-6, ε 1e-8), a cosine learning rate after
500 warm-up steps, gradient clipping at 1, `EMAModel` with warm-up (inv_gamma 1, power 3/4, max decay 0.9999), batch
16; sampled with `DDIMScheduler` and `DPMSolverMultistepScheduler` built from the training scheduler's config.
diffusers is a benchmark-only dependency (`pip install -e '.[bench]'`), imported where it is used.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ddpm.samplers import image_generators, randn

RECIPE = {"batch_size": 16, "lr": 1e-4, "betas": (0.95, 0.999), "weight_decay": 1e-6, "eps": 1e-8, "warmup_steps": 500,
          "grad_clip": 1.0, "ema_inv_gamma": 1.0, "ema_power": 0.75, "ema_max_decay": 0.9999}


def diffusers_module() -> Any:
    """diffusers, the benchmark's optional dependency, or a one-line error that says how to install it."""
    try:
        import diffusers
        import diffusers.optimization
        import diffusers.training_utils
    except ImportError:
        raise RuntimeError("the benchmark's peer needs diffusers: pip install -e '.[bench]'") from None
    return diffusers


class DiffusersUNet(nn.Module):
    """diffusers' UNet2DModel with our UNet's channels, levels, blocks per level, attention levels and heads."""

    def __init__(self, model_params: dict[str, Any], in_channels: int = 1, sample_size: int = 28) -> None:
        super().__init__()
        UNet2DModel = diffusers_module().UNet2DModel

        widths = [model_params["channels"] * m for m in model_params["channel_mults"]]
        attn = model_params["attention_levels"] or [len(widths) - 1]
        self.net = UNet2DModel(
            sample_size=sample_size, in_channels=in_channels, out_channels=in_channels,
            block_out_channels=tuple(widths), layers_per_block=model_params["num_res_blocks"],
            down_block_types=tuple("AttnDownBlock2D" if i in model_params["attention_levels"] else "DownBlock2D"
                                   for i in range(len(widths))),
            up_block_types=tuple("AttnUpBlock2D" if i in model_params["attention_levels"] else "UpBlock2D"
                                 for i in reversed(range(len(widths)))),
            attention_head_dim=widths[attn[0]] // model_params["heads"], norm_num_groups=model_params["groups"], dropout=model_params["dropout"],
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, **_: Any) -> torch.Tensor:
        return self.net(x, t).sample


class PeerTrainer:
    """diffusers' training loop for `total_steps` steps (the cosine schedule's length), one step at a time."""

    def __init__(self, model_params: dict[str, Any], data: torch.Tensor, total_steps: int, seed: int) -> None:
        diffusers = diffusers_module()
        DDPMScheduler, get_scheduler = diffusers.DDPMScheduler, diffusers.optimization.get_scheduler
        EMAModel = diffusers.training_utils.EMAModel
        torch.manual_seed(seed)
        self.data, self.generator = data, torch.Generator().manual_seed(seed)
        self.model = DiffusersUNet(model_params, in_channels=data.shape[1], sample_size=data.shape[-1])
        self.scheduler = DDPMScheduler(num_train_timesteps=1000)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=RECIPE["lr"], betas=RECIPE["betas"],
                                     weight_decay=RECIPE["weight_decay"], eps=RECIPE["eps"])
        self.lr = get_scheduler("cosine", optimizer=self.opt, num_warmup_steps=RECIPE["warmup_steps"],
                                num_training_steps=total_steps)
        self.ema = EMAModel(self.model.parameters(), decay=RECIPE["ema_max_decay"], use_ema_warmup=True,
                            inv_gamma=RECIPE["ema_inv_gamma"], power=RECIPE["ema_power"])
        self.step, self.order, self.total_steps = 0, torch.empty(0, dtype=torch.long), total_steps

    def next_batch(self) -> torch.Tensor:
        """The next batch of a shuffled pass over the data (the example's DataLoader with shuffle=True)."""
        if len(self.order) < RECIPE["batch_size"]:
            self.order = torch.randperm(len(self.data), generator=self.generator)
        idx, self.order = self.order[:RECIPE["batch_size"]], self.order[RECIPE["batch_size"]:]
        return self.data[idx]

    def train_step(self) -> float:
        """One optimizer step, as the example does it."""
        self.model.train()
        x0 = self.next_batch()
        noise = torch.randn(x0.shape, generator=self.generator)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(x0),), generator=self.generator)
        loss = F.mse_loss(self.model(self.scheduler.add_noise(x0, noise, t), t), noise)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), RECIPE["grad_clip"])
        self.opt.step()
        if self.step < self.total_steps:  # diffusers' cosine climbs back after its last step: hold it there
            self.lr.step()
        self.ema.step(self.model.parameters())
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        return loss.item()

    def ema_model(self) -> DiffusersUNet:
        """A copy of the model holding the EMA weights, in eval mode."""
        model = copy.deepcopy(self.model)
        self.ema.copy_to(model.parameters())
        return model.eval()


@torch.no_grad()
def sample_peer(model: DiffusersUNet, train_scheduler: Any, sampler: str, steps: int, n: int, batch_size: int,
                seed: int, shape: tuple[int, ...] = (1, 28, 28)) -> torch.Tensor:
    """n images with diffusers' DDIMScheduler (its default η = 0) or DPMSolverMultistepScheduler (DPM-Solver++ 2M),
    built from the training scheduler's config; each image's noise from its own generator, as ours."""
    diffusers = diffusers_module()
    schedulers = {"ddim": diffusers.DDIMScheduler, "dpm-solver++": diffusers.DPMSolverMultistepScheduler}
    out = []
    for lo in range(0, n, batch_size):
        scheduler = schedulers[sampler].from_config(train_scheduler.config)
        scheduler.set_timesteps(steps)
        indices = range(lo, min(n, lo + batch_size))
        x = randn((len(indices), *shape), image_generators(seed, indices, "cpu"), "cpu")
        for t in scheduler.timesteps:
            x = scheduler.step(model(x, t.expand(len(x))), t, x).prev_sample
        out.append(x.clamp(-1, 1))
    return torch.cat(out)
