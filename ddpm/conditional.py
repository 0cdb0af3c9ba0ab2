"""Classifier-free guidance (Ho & Salimans 2022): context dropout in training, guided ε̃ at sampling.

Convention: ε̃ = (1 + w)·ε_θ(x_t, c) − w·ε_θ(x_t, ∅), where ∅ is the context multiplied by zero.
w = 0 is the plain conditional model; w = −1 would be the unconditional one. `guidance` below is w
(diffusers' `guidance_scale` is 1 + w).
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

import torch
from torch import nn

from .diffusion import Diffusion, sample_batched

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def get_context_mask(n: int, p_uncond: float, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """A (n, 1) binary mask: 0 with probability p_uncond (the context is dropped), 1 otherwise."""
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond = {p_uncond}: must be in [0, 1]")
    return (torch.rand(n, 1, generator=generator, device=device) >= p_uncond).float()


def context_dropout(p_uncond: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training-time transform c ↦ c · get_context_mask(p_uncond)."""
    def drop(context: torch.Tensor) -> torch.Tensor:
        return context * get_context_mask(len(context), p_uncond, device=context.device).to(context.dtype)
    return drop


class ClassifierFreeGuidance(nn.Module):
    """ε̃(x_t, t) = (1 + w)·ε(x_t, c) − w·ε(x_t, 0), both halves in one batched forward pass."""

    def __init__(self, model: nn.Module, context: torch.Tensor, guidance: float) -> None:
        super().__init__()
        if guidance < 0:
            raise ValueError(f"guidance = {guidance}: must be ≥ 0 (0 is the plain conditional model)")
        self.model, self.context, self.guidance = model, context, guidance

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.guidance == 0:
            return self.model(x, t, context=self.context)
        both = self.model(torch.cat([x, x]), torch.cat([t, t]),
                          context=torch.cat([self.context, torch.zeros_like(self.context)]))
        cond, uncond = both.chunk(2)
        return (1 + self.guidance) * cond - self.guidance * uncond


def parse_digit_prompt(prompt: str) -> int:
    """'7', 'a handwritten 7' or 'seven' → 7; anything else is a one-line error naming the prompt."""
    words = re.findall(r"[a-z]+|\d+", prompt.lower())
    found = {int(w) for w in words if w.isdigit() and len(w) == 1} | {DIGIT_WORDS.index(w) for w in words if w in DIGIT_WORDS}
    if len(found) != 1:
        raise ValueError(f"prompt {prompt!r}: name exactly one digit 0–9 (e.g. 'a handwritten 7')")
    return found.pop()


def digit_context(digits: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """One-hot context vectors (N, 10); the UNet's context MLP is the learned label embedding."""
    return nn.functional.one_hot(torch.as_tensor(digits, dtype=torch.long), 10).float()


def sample_with_context(
    diffusion: Diffusion, model: nn.Module, context: torch.Tensor, shape: tuple[int, ...], guidance: float,
    batch_size: int, generator: torch.Generator | None = None, **kwargs,
) -> torch.Tensor:
    """One image per context row (a zero row is an unconditional sample), guided with weight w = `guidance`."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(context), batch_size):
        guided = ClassifierFreeGuidance(model, context[i:i + batch_size].to(device), guidance)
        out.append(sample_batched(diffusion, guided, len(guided.context), shape, batch_size, generator=generator,
                                  device=device, **kwargs))
    return torch.cat(out)
