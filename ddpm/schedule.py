"""Variance schedules β_1..β_T, computed in float64 (improved-diffusion's get_named_beta_schedule)."""
from __future__ import annotations

import math

import torch


def _check_T(T: int) -> None:
    if not isinstance(T, int) or T < 2:
        raise ValueError(f"T = {T!r}: the number of diffusion steps must be an integer ≥ 2")


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_t linearly spaced from beta_start to beta_end (Ho et al. 2020), shape (T,), float64."""
    _check_T(T)
    if not 0.0 < beta_start < beta_end < 1.0:
        raise ValueError(
            f"beta_start = {beta_start}, beta_end = {beta_end}: need 0 < beta_start < beta_end < 1"
        )
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """β_t = 1 − ᾱ(t+1)/ᾱ(t) with ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2) (Nichol & Dhariwal 2021), float64."""
    _check_T(T)
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    alpha_bar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=max_beta)


SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas}


def named_betas(name: str, T: int, **kwargs: float) -> torch.Tensor:
    """The schedule called `name` ("linear" or "cosine") with T steps."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule = {name!r}: must be one of {sorted(SCHEDULES)}")
    if name == "cosine":
        kwargs = {}
    return SCHEDULES[name](T, **kwargs)
