"""One sampling loop for every sampler and every kind of guided sampling.

A sampler's step is a pure function (diffusion, x_t, t, t_prev, ε̂, η, clip, state) → (mean, variance, state) of
p(x_{t_prev} | x_t); the loop draws x_{t_prev} = mean + σ z from it. Guidance is a hook the loop calls: a
`StepHook` may compute ε̂ itself (e.g. with a gradient through the UNet) and correct x_{t_prev} after each
step. Plain samples, completions and classifier-free guidance (a model wrapper, see guidance.py) all run
through `run_chain`, so a sampler added to SAMPLERS works for all of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

import torch
from tqdm.auto import tqdm

from .deprecation import renamed_attributes, warn_renamed
from .diffusion import Diffusion, NoisePredictor

Generators = torch.Generator | Sequence[torch.Generator] | None


def randn(shape: tuple[int, ...], generator: Generators, device: torch.device | str) -> torch.Tensor:
    """N(0, I) noise; with a list of generators, image i draws from generator i (a batch then equals single images)."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"generator: {len(generator)} generators for a batch of {shape[0]} images")
        return torch.stack([torch.randn(shape[1:], generator=g, device=device) for g in generator])
    return torch.randn(shape, generator=generator, device=device)


def image_generators(seed: int, indices: range, device: torch.device | str) -> list[torch.Generator]:
    """One generator per image, seeded by (seed, image index): an image's noise does not depend on batching or ranks."""
    return [torch.Generator(device).manual_seed(seed * 1_000_003 + i) for i in indices]


# -- sampler steps: (diffusion, x_t, t, t_prev, ε̂, η, clip, state) → (mean, variance, state) -------------------------
StepFn = Callable[..., tuple[torch.Tensor, torch.Tensor, Any]]


def ancestral_step(d: Diffusion, x: torch.Tensor, t: int, t_prev: int, eps: torch.Tensor, eta: float, clip: bool,
                   state: Any) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """DDPM: p(x_{t-1} | x_t) = q(x_{t-1} | x_t; t, ε̂) = N(μ̃_t(x_t, x̂_0), β̃_t) (η is not used)."""
    mean, var = d.p_mean_variance(x, time_batch(t, x), eps, clip)
    return mean, var, state


def ddim_step(d: Diffusion, x: torch.Tensor, t: int, t_prev: int, eps: torch.Tensor, eta: float, clip: bool,
              state: Any) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """DDIM (Song et al. 2021): x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε̂ + σ z, σ² = η²(1−ᾱ_s)/(1−ᾱ_t)(1 − ᾱ_t/ᾱ_s)."""
    tt = time_batch(t, x)
    mean, var = d.ddim_mean_variance(x, tt, torch.full_like(tt, t_prev), eps, eta, clip)
    return mean, var, state


def dpm_solver_step(d: Diffusion, x: torch.Tensor, t: int, t_prev: int, eps: torch.Tensor, eta: float, clip: bool,
                    state: Any) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """DPM-Solver++(2M) (Lu et al. 2022), deterministic (η is not used): with λ = log(α/σ), α = √ᾱ, σ = √(1−ᾱ),
    h = λ_s − λ_t, x_s = (σ_s/σ_t) x_t + α_s (1 − e^{−h}) D, where D = x̂_0 at the first step and
    D = (1 + 1/(2r)) x̂_0 − 1/(2r) x̂_0' after it (x̂_0' the previous step's, r = h'/h); the last step returns x̂_0.
    Its mean equals √ᾱ_s x̃_0 + σ_s ε̂ (x̃_0 = e^{−h} x̂_0 + (1 − e^{−h}) D), the form the completion's mean route inverts."""
    tt = time_batch(t, x)
    x0 = d.predict_x0_from_eps(x, tt, eps, clip)
    if t_prev < 0:
        return x0, torch.zeros_like(x), None
    ab_t, ab_s = d.alphas_bar[t].item(), d.alphas_bar[t_prev].item()
    lam_t, lam_s = 0.5 * math.log(ab_t / (1 - ab_t)), 0.5 * math.log(ab_s / (1 - ab_s))
    h = lam_s - lam_t
    data = x0
    if state is not None:  # the previous step's x̂_0 and λ: the second-order correction
        x0_prev, lam_prev = state
        r = (lam_t - lam_prev) / h
        data = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
    sigma_ratio = math.sqrt((1 - ab_s) / (1 - ab_t))
    mean = sigma_ratio * x + math.sqrt(ab_s) * (1 - math.exp(-h)) * data
    return mean, torch.zeros_like(x), (x0, lam_t)


SAMPLERS: dict[str, StepFn] = {"ancestral": ancestral_step, "ddim": ddim_step, "dpm++2m": dpm_solver_step}


def check_sampler(sampler: str, steps: int | None, T: int) -> None:
    """The ancestral sampler visits all T steps; the others any 1 ≤ steps ≤ T (one-line errors)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler = {sampler!r}: must be one of {', '.join(SAMPLERS)}")
    if sampler == "ancestral" and steps not in (None, T):
        raise ValueError(f"steps = {steps}: the ancestral sampler visits all T = {T} steps; use 'ddim' or 'dpm++2m'")


def time_batch(t: int, like: torch.Tensor) -> torch.Tensor:
    """t for every image of the batch `like`, as the network and the schedule take it."""
    return torch.full((like.shape[0],), t, device=like.device, dtype=torch.long)


# -- step hooks (guided sampling) ----------------------------------------------------------------------------------------------
@dataclass
class StepState:
    """What one reverse step computed, handed to a hook's correction."""
    x: torch.Tensor        # x_t
    t: int
    t_prev: int
    eps: torch.Tensor      # ε̂(x_t, t)
    mean: torch.Tensor     # mean of p(x_{t_prev} | x_t)
    var: torch.Tensor      # its variance


class StepHook(Protocol):
    """A hook of the sampling loop: how ε̂ is computed, and what is done to x_{t_prev} after each step."""

    def predict(self, model: NoisePredictor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...

    def correct(self, x_prev: torch.Tensor, step: StepState, generator: Generators) -> torch.Tensor: ...


@torch.no_grad()
def model_eps(d: Diffusion, model: NoisePredictor, x: torch.Tensor, t: torch.Tensor, **model_kwargs: Any
                  ) -> torch.Tensor:
    """ε̂(x_t, t) from the network's output (ε or v: `Diffusion.eps_from_output`), in x's dtype."""
    return d.eps_from_output(x, t, model(x, t, **model_kwargs).to(x.dtype))


def run_chain(d: Diffusion, model: NoisePredictor, x: torch.Tensor, *, sampler: str = "ancestral",
              steps: int | None = None, eta: float = 0.0, clip: bool = True, generator: Generators = None,
              hook: StepHook | None = None, progress: bool = False, guide: StepHook | None = None,
              **model_kwargs: Any) -> torch.Tensor:
    """From x = x_T down to x_0: at each (t, t_prev), ε̂ (the hook's, or the model's), the sampler's step, a draw of
    x_{t_prev} = mean + σ z (no noise at the last step), then the hook's correction. Returns x_0 clipped to [−1, 1]."""
    if guide is not None:  # 0.7's name of the hook
        warn_renamed("run_chain(guide=…)", "run_chain(hook=…)")
        hook = guide
    check_sampler(sampler, steps, d.T)
    if eta < 0:
        raise ValueError(f"eta = {eta}: must be ≥ 0")
    step_fn, state = SAMPLERS[sampler], None
    for t, t_prev in tqdm(list(d.reverse_steps(steps)), disable=not progress, desc="sampling", leave=False):
        tt = time_batch(t, x)
        eps = hook.predict(model, x, tt) if hook is not None else model_eps(d, model, x, tt, **model_kwargs)
        with torch.no_grad():
            mean, var, state = step_fn(d, x, t, t_prev, eps, eta, clip, state)
            noisy = t_prev >= 0 and bool(var.any())  # DDIM with η = 0 and DPM-Solver draw no noise
            x_prev = mean + var.sqrt() * randn(tuple(x.shape), generator, x.device) if noisy else mean
        if hook is not None:
            x_prev = hook.correct(x_prev, StepState(x, t, t_prev, eps, mean, var), generator)
        x = x_prev
    bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
    if bad:  # clamp keeps NaN: say so rather than hand on images that are not images
        raise FloatingPointError(f"sampling diverged: {bad} of {len(x)} images have NaN or infinite pixels; lower the "
                                 "guidance or completion scale, or the learning rate of the model that made them")
    return x.clamp(-1, 1)


def sample(d: Diffusion, model: NoisePredictor, n: int, shape: tuple[int, ...], *, generator: Generators = None,
           device: torch.device | str | None = None, **kwargs: Any) -> torch.Tensor:
    """n images: x_T ~ N(0, I), then `run_chain` (sampler "ancestral" over all T steps, or "ddim" or "dpm++2m" over
    `steps`)."""
    device = torch.device(device) if device is not None else next(_parameters(model), torch.empty(0)).device
    return run_chain(d, model, randn((n, *shape), generator, device), generator=generator, **kwargs)


def sample_batched(d: Diffusion, model: NoisePredictor, n: int, shape: tuple[int, ...], batch_size: int,
                   generator: Generators = None, device: torch.device | str | None = None, **kwargs: Any) -> torch.Tensor:
    """`n` samples drawn `batch_size` at a time and gathered on the CPU, so memory stays bounded by one batch; with a
    list of n generators (one per image), each batch takes its images' own."""
    def generators(i: int) -> Generators:
        return generator[i:i + batch_size] if isinstance(generator, (list, tuple)) else generator

    out = [sample(d, model, min(batch_size, n - i), shape, generator=generators(i), device=device, **kwargs).cpu()
           for i in range(0, n, batch_size)]
    return torch.cat(out) if out else torch.empty(0, *shape)


def sample_seeded(d: Diffusion, model: NoisePredictor, indices: range, shape: tuple[int, ...], seed: int,
                  batch_size: int, device: torch.device | str, **kwargs: Any) -> torch.Tensor:
    """The images `indices` of a seeded set, batch_size at a time, gathered on the CPU: image i's noise comes from
    its own generator (seed, i), so any batching, any sharding over processes, gives the same images."""
    return sample_batched(d, model, len(indices), shape, batch_size, generator=image_generators(seed, indices, device),
                          device=device, **kwargs)


def _parameters(model: NoisePredictor) -> Iterator[torch.Tensor]:
    return model.parameters() if isinstance(model, torch.nn.Module) else iter(())


__getattr__ = renamed_attributes(globals(), {"Guide": "StepHook", "predict_noise": "model_eps"})
