"""The noise predictor ε_θ(x_t, t[, c]): a DDPM UNet (residual blocks, GroupNorm, attention, skips).

It knows nothing of schedules: the only diffusion fact it holds is T, to turn the integer
t ∈ [0, T) into the float t / (T − 1) ∈ [0, 1] before the sinusoidal embedding.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .deprecation import warn_renamed
from .modelfolder import CONFIG, WEIGHTS, ModelFolderError, load_into, read_config


def sinusoidal_embedding(s: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """[sin(scale·s·ω_k), cos(scale·s·ω_k)], ω_k = 10000^(−k/(dim/2)); s is a float in [0, 1], shape (B,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=s.device, dtype=torch.float32) / half)
    args = scale * s.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class Dropout16(nn.Module):
    """Dropout (zero with probability p, scale the rest by 1/(1−p)) whose CPU mask comes from 16-bit draws.

    torch's CPU dropout draws one 32-bit random number per element, and on a CPU that draw costs more than
    the convolution beside it; two 16-bit halves of each draw halve the work. p is rounded to a multiple of
    2⁻¹⁶ (0.1 → 0.100006) and the scale uses the rounded p, so E[dropout(x)] = x still holds exactly.
    Elsewhere (CUDA's fused kernel is cheap) it is F.dropout.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout p = {p}: must be in [0, 1)")
        self.p = p
        self.threshold = round(p * 65536)  # drop where the 16-bit draw u ∈ [0, 65536) is < threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        halves = torch.empty((n + 1) // 2, dtype=torch.int32).random_(-2**31, 2**31).view(torch.int16)
        keep = halves[:n].view(x.shape) >= self.threshold - 32768  # int16 u − 32768 ≥ threshold − 32768
        return x * (keep.to(x.dtype) * (65536 / (65536 - self.threshold)))  # one multiplier: one backward op

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


CONDITIONINGS = ("add", "scale_shift")


class ResBlock(nn.Module):
    """h = conv(SiLU(GN(x))); out = x·W_skip + conv(dropout(SiLU(n(h)))), where the embedding e enters as
    n(h) = GN(h + W e) ("add", Ho et al. 2020) or n(h) = GN(h)·(1 + s) + b with (s, b) = W e ("scale_shift",
    AdaGN of Dhariwal & Nichol 2021: GroupNorm no longer subtracts the embedding's shift within each group)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, groups: int,
                 conditioning: str = "add") -> None:
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning = {conditioning!r}: must be one of {', '.join(CONDITIONINGS)}")
        self.scale_shift = conditioning == "scale_shift"
        self.norm1 = _norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out if self.scale_shift else c_out)
        self.norm2 = _norm(c_out, groups)
        self.dropout = Dropout16(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb(emb)[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H·W positions, residual, via scaled_dot_product_attention."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        y = F.scaled_dot_product_attention(q, k, v)  # (b, heads, hw, c/heads)
        return x + self.out(y.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """ε_θ(x, t, context): an encoder–decoder with skip connections (Ho et al. 2020, Appendix B).

    channel_mults sets the width of each resolution level (one downsampling between levels);
    attention_levels lists the level indices (0 = full resolution) that get self-attention.
    context_dim > 0 adds a context vector (e.g. a CLIP embedding), projected into the time
    embedding; context = None or an all-zero (dropped) context is the unconditional model.
    """

    def __init__(
        self, in_channels: int = 1, channels: int = 64, channel_mults: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 2, attention_levels: Sequence[int] = (2,), heads: int = 4,
        dropout: float = 0.1, groups: int = 32, T: int = 1000, context_dim: int = 0,
        out_channels: int | None = None, patch_size: int = 1, conditioning: str = "add",
        num_timesteps: int | None = None,
    ) -> None:
        super().__init__()
        if num_timesteps is not None:  # 0.7's name of T
            warn_renamed("UNet(num_timesteps=…)", "UNet(T=…)")
            T = num_timesteps
        if T < 2:
            raise ValueError(f"T = {T}: the number of diffusion steps must be ≥ 2")
        self.config = {  # the constructor's arguments: what config.json stores (diffusers' register_to_config)
            "in_channels": in_channels, "channels": channels, "channel_mults": list(channel_mults),
            "num_res_blocks": num_res_blocks, "attention_levels": list(attention_levels), "heads": heads,
            "dropout": dropout, "groups": groups, "T": T, "context_dim": context_dim,
            "out_channels": out_channels, "patch_size": patch_size, "conditioning": conditioning}
        self.T = T
        self.in_channels = in_channels
        self.context_dim = context_dim
        emb_dim = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.context_mlp = (
            nn.Sequential(nn.Linear(context_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
            if context_dim else None
        )
        if self.context_mlp is not None:  # starts with no effect: a conditional model can start from an unconditional one
            nn.init.zeros_(self.context_mlp[-1].weight)
            nn.init.zeros_(self.context_mlp[-1].bias)
        if patch_size < 1:
            raise ValueError(f"patch_size = {patch_size}: must be ≥ 1")
        self.patch_size = patch_size  # > 1: the network sees p×p pixel blocks as channels (pixel_unshuffle)
        self.stem = nn.Conv2d(in_channels * patch_size**2, channels, 3, padding=1)

        self.down = nn.ModuleList()
        skips, ch = [channels], channels
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                block = nn.ModuleList([ResBlock(ch, channels * mult, emb_dim, dropout, groups, conditioning)])
                ch = channels * mult
                if level in attention_levels:
                    block.append(SelfAttention(ch, heads, groups))
                self.down.append(block)
                skips.append(ch)
            if level < len(channel_mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                skips.append(ch)

        self.mid = nn.ModuleList([
            ResBlock(ch, ch, emb_dim, dropout, groups, conditioning), SelfAttention(ch, heads, groups),
            ResBlock(ch, ch, emb_dim, dropout, groups, conditioning),
        ])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(num_res_blocks + 1):
                block = nn.ModuleList([ResBlock(ch + skips.pop(), channels * mult, emb_dim, dropout, groups, conditioning)])
                ch = channels * mult
                if level in attention_levels:
                    block.append(SelfAttention(ch, heads, groups))
                self.up.append(block)
            if level > 0:
                self.up.append(nn.ModuleList([Upsample(ch)]))
        self.head = nn.Sequential(_norm(ch, groups), nn.SiLU(),
                                  nn.Conv2d(ch, (out_channels or in_channels) * patch_size**2, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    @classmethod
    def from_params(cls, p: dict[str, Any], in_channels: int, T: int, context_dim: int = 0) -> "UNet":
        """From a `model` params section: {channels, channel_mults, num_res_blocks, attention_levels, heads, dropout,
        groups, patch_size, conditioning}."""
        return cls(in_channels=in_channels, channels=p["channels"], channel_mults=tuple(p["channel_mults"]),
                   num_res_blocks=p["num_res_blocks"], attention_levels=tuple(p["attention_levels"]), heads=p["heads"],
                   dropout=p["dropout"], groups=p["groups"], T=T, context_dim=context_dim,
                   patch_size=p["patch_size"], conditioning=p.get("conditioning", "add"))

    @classmethod
    def from_pretrained(cls, folder: str | Path, weights: str = WEIGHTS) -> "UNet":
        """The network a model folder describes (config.json's "unet"), with its EMA weights (or `weights`, e.g.
        guide.safetensors), in eval mode; no params.yaml needed."""
        config = read_config(folder)
        try:
            model = cls(**config["unet"])
        except (TypeError, ValueError, RuntimeError) as e:  # unknown keys, impossible sizes
            raise ModelFolderError(f"{Path(folder) / CONFIG}: its 'unet' section does not build a UNet ({e})") from None
        return load_into(model, folder, weights)

    @property
    def num_timesteps(self) -> int:
        warn_renamed("UNet.num_timesteps", "UNet.T", stacklevel=2)
        return self.T

    def time_to_unit(self, t: torch.Tensor) -> torch.Tensor:
        """The integer t ∈ [0, T) as the float t / (T − 1) ∈ [0, 1]."""
        if t.dtype.is_floating_point:
            raise TypeError("t: the UNet takes integer timesteps in [0, T), got a float tensor")
        return t.float() / (self.T - 1)

    def embed(self, t: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """The per-image conditioning vector: MLP(sinusoid(t / (T−1))) [+ MLP(context)]."""
        sinusoid = sinusoidal_embedding(self.time_to_unit(t), self.stem.out_channels)
        emb = self.time_mlp(sinusoid.to(self.stem.weight.dtype))
        if self.context_mlp is not None and context is not None:
            emb = emb + self.context_mlp(context.to(emb.dtype))
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.embed(t, context)
        if self.patch_size > 1:
            x = F.pixel_unshuffle(x, self.patch_size)
        h = self.stem(x)
        hs = [h]
        for block in self.down:
            h = _run(block, h, emb)
            hs.append(h)
        h = _run(self.mid, h, emb)
        for block in self.up:
            if isinstance(block[0], Upsample):  # to the size of the skip it meets next (7 → 14 → 28)
                h = block[0](h, hs[-1].shape[-2:])
            else:
                h = _run(block, torch.cat([h, hs.pop()], dim=1), emb)
        out = self.head(h)
        return F.pixel_shuffle(out, self.patch_size) if self.patch_size > 1 else out


class Upsample(nn.Module):
    """Nearest-neighbour upsampling to a given size, then a 3×3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return self.conv(F.interpolate(h, size=size, mode="nearest"))


def _run(layers: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
    return h
