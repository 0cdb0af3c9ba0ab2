"""lucidrains' denoising-diffusion-pytorch as a peer: `GaussianDiffusion` + `Unet`, CPU-tuned.

Its defaults are kept where they define the method: v-prediction, the sigmoid β schedule, 1000 steps, its loss
weighting, DDIM sampling (`sampling_timesteps`, η = 0) with x̂₀ clipped and ε re-derived. `Unet(dim=32,
dim_mults=(1, 2, 4))`: 28 → 14 → 7 as ours, 2.6 M parameters (ours 2.7 M). Its `Trainer` is not used (it wants an
image folder and a GPU); its training step is: the diffusion's forward (the loss) under bf16 autocast, clipping at 1,
Adam(W), and its own EMA (`ema_pytorch.EMA`, with its warm-up, every step), at ours' batch, peak rate and warm-up.
A benchmark-only dependency: `pip install -e '.[bench]'`.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from benchmarks.contender import TUNED, Peer, batches


def lucidrains_module() -> Any:
    try:
        import denoising_diffusion_pytorch.denoising_diffusion_pytorch as ddp
        import ema_pytorch
    except ImportError:
        raise RuntimeError("the benchmark's lucidrains peer needs denoising-diffusion-pytorch: "
                           "pip install -e '.[bench]'") from None
    ddp.tqdm = lambda iterable, **_: iterable  # its sampling loop draws a progress bar per batch; the benchmark prints its own
    return ddp, ema_pytorch


class LucidrainsTuned(Peer):
    label, tuning, recipe = "lucidrains, CPU-tuned", "0 trials (ours' values)", TUNED

    def __init__(self, model_params: dict[str, Any], data: torch.Tensor, budget_s: float, seed: int,
                 nfe: int = 100) -> None:
        super().__init__(data, budget_s, seed)
        ddp, ema_pytorch = lucidrains_module()
        self.nfe, self.shape = nfe, tuple(data.shape[1:])
        unet = ddp.Unet(dim=32, dim_mults=(1, 2, 4), channels=data.shape[1])
        # our data are already in [−1, 1]: no auto-normalization
        self.model = ddp.GaussianDiffusion(unet, image_size=data.shape[-1], timesteps=1000, auto_normalize=False)
        self.make_optimizer(betas=(0.9, 0.99))  # its Trainer's Adam betas
        self.ema = ema_pytorch.EMA(self.model, beta=self.recipe["ema_decay"], update_every=1)

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        return self.model(x0).float()

    def ema_update(self) -> None:
        self.ema.update()

    def ema_weights(self) -> dict[str, torch.Tensor]:
        return copy.deepcopy(self.ema.ema_model.state_dict())

    def samplers(self) -> dict[str, int]:
        return {f"its ddim {self.nfe} steps, η = 0": self.nfe}

    @torch.no_grad()
    def sample(self, weights: dict[str, torch.Tensor], sampler: str, n: int, seed: int, batch_size: int = 250
               ) -> torch.Tensor:
        diffusion = copy.deepcopy(self.model)
        diffusion.load_state_dict(weights)
        diffusion.eval()
        diffusion.sampling_timesteps, diffusion.is_ddim_sampling = self.nfe, self.nfe < diffusion.num_timesteps
        out = []
        for idx in batches(n, batch_size):
            torch.manual_seed(seed * 1_000_003 + idx[0])  # it draws its noise from the global generator
            with self.sampling_autocast():
                out.append(diffusion.sample(batch_size=len(idx)).float().clamp(-1, 1))
        return torch.cat(out)
