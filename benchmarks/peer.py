"""diffusers as a peer: its documented unconditional recipe, and the same library tuned for a CPU.

Both train `UNet2DModel` (of our UNet's channels, levels, blocks per level, attention levels and heads: the same
parameter count; diffusers has no patchified input, so it costs about 4× ours per image) with `DDPMScheduler`'s 1000
linear-β steps and ε-prediction.

- **Documented** (`DiffusersDocumented`): as its example `train_unconditional.py` sets it up: AdamW (lr 10⁻⁴,
  β = (0.95, 0.999), weight decay 10⁻⁶, ε 10⁻⁸), 500 warm-up steps then cosine, gradient clipping at 1, `EMAModel`
  with warm-up (inv_gamma 1, power ¾, max decay 0.9999), batch 16, fp32 (its `--mixed_precision` default "no");
  sampled with its own `DDPMPipeline`. A GPU recipe, kept as a reference.
- **CPU-tuned** (`DiffusersTuned`): batch, peak rate, warm-up and EMA of ours' CPU profile (contender.TUNED), the
  example's `--snr_gamma 5` (min-SNR-5 through `diffusers.training_utils.compute_snr`, as ours' min_snr), bf16
  autocast; sampled with `DDPMScheduler`, `DDIMScheduler` (η = 1, ε re-derived from the clipped x̂₀) and
  `DPMSolverMultistepScheduler` (DPM-Solver++ 2M), each at the benchmark's number of network evaluations.

diffusers is a benchmark-only dependency (`pip install -e '.[bench]'`), imported where it is used.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.contender import TUNED, Peer, batches
from ddpm.samplers import image_generators, randn

DOCUMENTED = {"batch_size": 16, "lr": 1e-4, "betas": (0.95, 0.999), "weight_decay": 1e-6, "eps": 1e-8,
              "warmup_steps": 500, "grad_clip": 1.0, "ema_inv_gamma": 1.0, "ema_power": 0.75, "ema_max_decay": 0.9999}


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


class DiffusersPeer(Peer):
    """diffusers' training step: ε-MSE at a uniform t (min-SNR-γ weighted where the recipe has snr_gamma)."""

    def __init__(self, model_params: dict[str, Any], data: torch.Tensor, budget_s: float, seed: int) -> None:
        super().__init__(data, budget_s, seed)
        d = diffusers_module()
        self.model = DiffusersUNet(model_params, in_channels=data.shape[1], sample_size=data.shape[-1])
        self.shape = tuple(data.shape[1:])
        self.scheduler = d.DDPMScheduler(num_train_timesteps=1000)
        r = self.recipe
        self.make_optimizer(betas=r.get("betas", (0.9, 0.999)), eps=r.get("eps", 1e-8))
        if "ema_power" in r:  # the example's EMA with warm-up
            self.ema = d.training_utils.EMAModel(self.model.parameters(), decay=r["ema_max_decay"], use_ema_warmup=True,
                                                 inv_gamma=r["ema_inv_gamma"], power=r["ema_power"])
        else:  # EMAModel without warm-up: decay min(d, (1+n)/(10+n)), as ours
            self.ema = d.training_utils.EMAModel(self.model.parameters(), decay=r["ema_decay"])

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x0.shape, generator=self.generator)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(x0),), generator=self.generator)
        pred = self.model(self.scheduler.add_noise(x0, noise, t), t).float()
        if "snr_gamma" not in self.recipe:
            return F.mse_loss(pred, noise)
        snr = diffusers_module().training_utils.compute_snr(self.scheduler, t)  # the example's --snr_gamma branch
        weights = torch.clamp(snr, max=self.recipe["snr_gamma"]) / snr
        return (F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3)) * weights).mean()

    def ema_update(self) -> None:
        self.ema.step(self.model.parameters())

    def ema_weights(self) -> dict[str, torch.Tensor]:
        model = copy.deepcopy(self.model)
        self.ema.copy_to(model.parameters())
        return model.state_dict()

    def sampling_model(self, weights: dict[str, torch.Tensor]) -> DiffusersUNet:
        model = copy.deepcopy(self.model)
        model.load_state_dict(weights)
        return model.eval()

    def scheduler_for(self, sampler: str, nfe: int) -> tuple[Any, dict[str, Any]]:
        """A diffusers scheduler of the training scheduler's config, its steps set, and what its step() takes."""
        d = diffusers_module()
        kind = sampler.split()[0]
        cls = {"ddpm": d.DDPMScheduler, "ddim": d.DDIMScheduler, "dpm-solver++": d.DPMSolverMultistepScheduler}[kind]
        scheduler = cls.from_config(self.scheduler.config)
        scheduler.set_timesteps(nfe)
        return scheduler, ({"eta": 1.0, "use_clipped_model_output": True} if kind == "ddim" else {})

    @torch.no_grad()
    def sample(self, weights: dict[str, torch.Tensor], sampler: str, n: int, seed: int, batch_size: int = 250
               ) -> torch.Tensor:
        model, out = self.sampling_model(weights), []
        for idx in batches(n, batch_size):
            scheduler, kwargs = self.scheduler_for(sampler, self.samplers()[sampler])
            x = randn((len(idx), *self.shape), image_generators(seed, idx, "cpu"), "cpu")
            g = torch.Generator().manual_seed(seed * 1_000_003 + idx[0])
            with self.sampling_autocast():
                for t in scheduler.timesteps:
                    eps = model(x, t.expand(len(x))).float()
                    x = scheduler.step(eps, t, x, generator=g, **kwargs).prev_sample
            out.append(x.clamp(-1, 1))
        return torch.cat(out)


class DiffusersDocumented(DiffusersPeer):
    label, tuning, recipe, amp = "diffusers, documented (a GPU recipe)", "documented", DOCUMENTED, False

    def __init__(self, model_params: dict[str, Any], data: torch.Tensor, budget_s: float, seed: int,
                 nfe: int = 100) -> None:
        self.nfe = nfe
        super().__init__(model_params, data, budget_s, seed)

    def samplers(self) -> dict[str, int]:
        return {f"DDPMPipeline, {self.nfe} steps": self.nfe}

    @torch.no_grad()
    def sample(self, weights: dict[str, torch.Tensor], sampler: str, n: int, seed: int, batch_size: int = 250
               ) -> torch.Tensor:
        """The example's own sampler: DDPMPipeline (at `nfe` steps), in [−1, 1] (output_type "np" is [0, 1])."""
        d = diffusers_module()
        scheduler = d.DDPMScheduler.from_config(self.scheduler.config)  # the pipeline sets its steps on it
        pipeline = d.DDPMPipeline(unet=self.sampling_model(weights).net, scheduler=scheduler)
        pipeline.set_progress_bar_config(disable=True)
        out = []
        for idx in batches(n, batch_size):
            g = torch.Generator().manual_seed(seed * 1_000_003 + idx[0])
            images = pipeline(batch_size=len(idx), generator=g, num_inference_steps=self.nfe, output_type="np").images
            out.append(torch.from_numpy(images).permute(0, 3, 1, 2) * 2 - 1)
        return torch.cat(out).float()


class DiffusersTuned(DiffusersPeer):
    label, tuning = "diffusers, CPU-tuned", "0 trials (ours' values)"
    recipe = {**TUNED, "snr_gamma": 5.0}

    def __init__(self, model_params: dict[str, Any], data: torch.Tensor, budget_s: float, seed: int,
                 nfe: int = 100) -> None:
        self.nfe = nfe
        super().__init__(model_params, data, budget_s, seed)

    def samplers(self) -> dict[str, int]:
        n = self.nfe
        return {f"ddpm {n} steps": n, f"ddim {n} steps, η = 1": n, f"dpm-solver++ {n} steps": n}
