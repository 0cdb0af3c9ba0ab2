"""Our UNet as a diffusers model (ModelMixin + ConfigMixin), so that an exported model folder loads with
`diffusers.DDPMPipeline.from_pretrained(folder)` and samples with any diffusers scheduler. The network is ours, not a
re-wiring of `UNet2DModel`: every option (patch_size, conditioning, the context MLP) carries over, and ε̂ is ours to
the last bit. Needs diffusers (pip install 'ddpm-dvc[bench]') and, wherever the folder is loaded, this package."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.unets.unet_2d import UNet2DOutput

from .unet import UNet


class DDPMUNet(ModelMixin, ConfigMixin):
    """diffusers' view of `ddpm.unet.UNet`: the same constructor arguments (config.json's "unet"), plus sample_size
    (what DDPMPipeline draws noise at); forward(sample, timestep) → UNet2DOutput(sample=ε̂ or v̂)."""

    @register_to_config
    def __init__(self, in_channels: int = 1, channels: int = 64, channel_mults: Sequence[int] = (1, 2, 2),
                 num_res_blocks: int = 2, attention_levels: Sequence[int] = (2,), heads: int = 4, dropout: float = 0.1,
                 groups: int = 32, T: int = 1000, context_dim: int = 0, out_channels: int | None = None,
                 patch_size: int = 1, conditioning: str = "add", sample_size: int = 28,
                 num_timesteps: int | None = None) -> None:  # num_timesteps: T in exports of 0.7
        super().__init__()
        self.unet = UNet(in_channels=in_channels, channels=channels, channel_mults=tuple(channel_mults),
                         num_res_blocks=num_res_blocks, attention_levels=tuple(attention_levels), heads=heads,
                         dropout=dropout, groups=groups, T=num_timesteps or T, context_dim=context_dim,
                         out_channels=out_channels, patch_size=patch_size, conditioning=conditioning)

    def forward(self, sample: torch.Tensor, timestep: Any, context: torch.Tensor | None = None,
                return_dict: bool = True) -> UNet2DOutput | tuple[torch.Tensor]:
        t = torch.as_tensor(timestep, device=sample.device).long()
        out = self.unet(sample, t.expand(len(sample)) if t.ndim == 0 else t, context=context)
        return UNet2DOutput(sample=out) if return_dict else (out,)
