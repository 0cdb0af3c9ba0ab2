"""Gaussian diffusion: the forward process q, its posterior, the ε-loss and the samplers.

One object holds every schedule-derived tensor (float64 on the CPU, cast on use), as in
openai/improved-diffusion's `gaussian_diffusion.py`. It is not an `nn.Module`, so an EMA
of the network never averages schedule buffers. Index convention: t ∈ [0, T) and t = 0 is
the first noising step, so ᾱ_{-1} := 1 and the posterior at t = 0 has variance 0.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

# model(x_t, t, **kwargs) -> ε̂(x_t, t)
NoisePredictor = Callable[..., torch.Tensor]


class Diffusion:
    """The DDPM forward process x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε and its reverse, for a given β schedule."""

    def __init__(self, betas: torch.Tensor) -> None:
        betas = torch.as_tensor(betas, dtype=torch.float64).cpu()
        if betas.ndim != 1 or len(betas) < 2:
            raise ValueError(f"betas: need a 1-D schedule of at least 2 steps, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas: every β_t must lie in (0, 1)")
        self.T = len(betas)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_bar = torch.cumprod(self.alphas, 0)
        self.alphas_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_bar[:-1]])
        # q(x_{t-1} | x_t, x_0) = N(c0·x_0 + ct·x_t, β̃_t)
        self.posterior_variance = betas * (1 - self.alphas_bar_prev) / (1 - self.alphas_bar)
        self.posterior_coef_x0 = betas * self.alphas_bar_prev.sqrt() / (1 - self.alphas_bar)
        self.posterior_coef_xt = (1 - self.alphas_bar_prev) * self.alphas.sqrt() / (1 - self.alphas_bar)
        self._device_cache: dict[tuple[torch.device, torch.dtype, str], torch.Tensor] = {}

    # -- helpers -------------------------------------------------------------------------
    def _at(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Schedule tensor `name` at integer times t, shaped (B, 1, 1, …) to broadcast against `like`."""
        key = (like.device, like.dtype, name)
        table = self._device_cache.get(key)
        if table is None:
            table = getattr(self, name).to(device=like.device, dtype=like.dtype)
            self._device_cache[key] = table
        t = self._check_t(t, like)
        return table[t].reshape(-1, *([1] * (like.ndim - 1)))

    def _check_t(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=like.device)
        if t.dtype.is_floating_point:
            raise TypeError("t: timesteps must be integers in [0, T), got a float tensor")
        if t.ndim == 0:
            t = t.expand(like.shape[0])
        return t.long()

    def alpha_bar_at(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """ᾱ_t shaped to broadcast against `like`, with ᾱ_{-1} = 1 (t may be −1: the end of a chain)."""
        t = self._check_t(t, like)
        ab = self._at("alphas_bar", t.clamp(min=0), like)
        return torch.where((t < 0).reshape(ab.shape), torch.ones_like(ab), ab)

    def timesteps(self, steps: int | None = None) -> list[int]:
        """The descending times visited by a sampler: all T, or `steps` evenly spaced ones (DDIM)."""
        if steps is None or steps == self.T:
            return list(range(self.T - 1, -1, -1))
        if not 1 <= steps <= self.T:
            raise ValueError(f"steps = {steps}: must be between 1 and T = {self.T}")
        grid = torch.linspace(self.T - 1, 0, steps, dtype=torch.float64).round().long()  # starts at T−1 even for 1 step
        return sorted(set(grid.tolist()), reverse=True)

    # -- forward process -----------------------------------------------------------------
    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)."""
        ab = self._at("alphas_bar", t, x0)
        return ab.sqrt() * x0, (1 - ab).expand_as(x0)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε,  ε ~ N(0, I): a draw from q(x_t | x_0)."""
        if noise is None:
            noise = torch.randn_like(x0)
        ab = self._at("alphas_bar", t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(x_{t-1} | x_t, x_0) = N(μ̃_t, β̃_t): μ̃_t = √ᾱ_{t-1}β_t/(1−ᾱ_t)·x_0 + √α_t(1−ᾱ_{t-1})/(1−ᾱ_t)·x_t, β̃_t = (1−ᾱ_{t-1})/(1−ᾱ_t)·β_t."""
        mean = self._at("posterior_coef_x0", t, xt) * x0 + self._at("posterior_coef_xt", t, xt) * xt
        return mean, self._at("posterior_variance", t, xt).expand_as(xt)

    # -- reverse process -----------------------------------------------------------------
    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """x̂_0 = E[x_0 | x_t] = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, clipped to [−1, 1] when `clip`."""
        ab = self._at("alphas_bar", t, xt)
        x0 = (xt - (1 - ab).sqrt() * eps) / ab.sqrt()
        return x0.clamp(-1, 1) if clip else x0

    def predict_eps(self, xt: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """ε = (x_t − √ᾱ_t x_0) / √(1 − ᾱ_t): the noise that takes x_0 to x_t."""
        ab = self._at("alphas_bar", t, xt)
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt()

    def q_reverse(
        self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, clip: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q(x_{t-1} | x_t; t, ε̂) = q(x_{t-1} | x_t, x̂_0(x_t, ε̂)) = N(μ̃_t(x_t, x̂_0), β̃_t)."""
        return self.q_posterior(self.predict_x0(xt, t, eps, clip), xt, t)

    def ddim_reverse(
        self, xt: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor, eps: torch.Tensor,
        eta: float = 0.0, clip: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """DDIM: x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε̂ + σ z, σ² = η²(1−ᾱ_s)/(1−ᾱ_t)(1 − ᾱ_t/ᾱ_s), s = t_prev."""
        x0 = self.predict_x0(xt, t, eps, clip)
        eps = self.predict_eps(xt, t, x0)  # consistent with the clipped x̂_0
        ab_t = self._at("alphas_bar", t, xt)
        ab_s = self.alpha_bar_at(t_prev, xt)
        var = eta**2 * (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)
        mean = ab_s.sqrt() * x0 + (1 - ab_s - var).clamp(min=0).sqrt() * eps
        return mean, var.expand_as(xt)

    # -- training ------------------------------------------------------------------------
    def loss(
        self, model: NoisePredictor, x0: torch.Tensor, t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None, **model_kwargs,
    ) -> torch.Tensor:
        """L_simple = E_{t, x_0, ε} ‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖², t ~ U[0, T)."""
        if t is None:
            t = torch.randint(0, self.T, (x0.shape[0],), device=x0.device)
        if noise is None:
            noise = torch.randn_like(x0)
        eps = model(self.q_sample(x0, t, noise), t, **model_kwargs)
        return F.mse_loss(eps.float(), noise.float())

    # -- sampling ------------------------------------------------------------------------
    def reverse_steps(self, steps: int | None = None) -> Iterator[tuple[int, int]]:
        """Pairs (t, t_prev) visited by a sampler, ending with t_prev = −1 (x_0)."""
        ts = self.timesteps(steps)
        yield from zip(ts, ts[1:] + [-1])

    def reverse(
        self, x: torch.Tensor, t: int, t_prev: int, eps: torch.Tensor, *, ancestral: bool, eta: float, clip: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of p(x_{t_prev} | x_t) given ε̂: q_reverse (ancestral) or the DDIM step."""
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        if ancestral:
            return self.q_reverse(x, tt, eps, clip)
        return self.ddim_reverse(x, tt, torch.full_like(tt, t_prev), eps, eta, clip)

    def sampler_kind(self, steps: int | None, method: str | None) -> bool:
        """Validate the sampler choice; True for the ancestral sampler, False for DDIM."""
        method = method or ("ancestral" if steps is None else "ddim")
        if method not in ("ancestral", "ddim"):
            raise ValueError(f"method = {method!r}: must be 'ancestral' or 'ddim'")
        if method == "ancestral" and steps not in (None, self.T):
            raise ValueError(f"steps = {steps}: the ancestral sampler visits all T = {self.T} steps; use method='ddim'")
        return method == "ancestral"

    @torch.no_grad()
    def sample(
        self, model: NoisePredictor, n: int, shape: tuple[int, ...], *, steps: int | None = None,
        eta: float = 0.0, method: str | None = None, clip: bool = True,
        generator: torch.Generator | list[torch.Generator] | None = None, device: torch.device | str | None = None,
        progress: bool = False, **model_kwargs,
    ) -> torch.Tensor:
        """x_T ~ N(0, I), then x_{t-1} ~ p(x_{t-1} | x_t) down to x_0 (ancestral over all T, or DDIM over `steps`).

        method: "ancestral" (q_reverse at every t; the default when `steps` is None) or "ddim"
        (η = `eta`; η = 1 over all T steps is the ancestral sampler). Returns x_0 in [−1, 1].
        """
        ancestral = self.sampler_kind(steps, method)
        if eta < 0:
            raise ValueError(f"eta = {eta}: must be ≥ 0")
        device = torch.device(device) if device is not None else next(_parameters(model), torch.empty(0)).device
        x = randn((n, *shape), generator, device)
        pairs = list(self.reverse_steps(steps))
        for t, t_prev in tqdm(pairs, disable=not progress, desc="sampling", leave=False):
            tt = torch.full((n,), t, device=device, dtype=torch.long)
            eps = model(x, tt, **model_kwargs).to(x.dtype)
            mean, var = self.reverse(x, t, t_prev, eps, ancestral=ancestral, eta=eta, clip=clip)
            x = mean + var.sqrt() * randn(x.shape, generator, device) if t_prev >= 0 else mean
        return x.clamp(-1, 1)

    def complete_image(self, model: NoisePredictor, y: torch.Tensor, ymask: torch.Tensor, scale: float = 1.0,
                       wrt: str = "xt", **kwargs) -> torch.Tensor:
        """Sample x ~ p(x | y_m·x = y_m·y): `sample` plus −s·∇ Σ_pixels (y_m·(x̂_0 − y))² after each step (see guidance.py)."""
        from .guidance import complete_image

        return complete_image(self, model, y, ymask, scale, wrt, **kwargs)


def randn(shape: tuple[int, ...], generator: torch.Generator | list[torch.Generator] | None,
          device: torch.device | str) -> torch.Tensor:
    """N(0, I) noise; with a list of generators, image i draws from generator i (a batch then equals single images)."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"generator: {len(generator)} generators for a batch of {shape[0]} images")
        return torch.stack([torch.randn(shape[1:], generator=g, device=device) for g in generator])
    return torch.randn(shape, generator=generator, device=device)


def _parameters(model: NoisePredictor) -> Iterator[torch.Tensor]:
    return model.parameters() if isinstance(model, torch.nn.Module) else iter(())


def sample_batched(
    diffusion: Diffusion, model: NoisePredictor, n: int, shape: tuple[int, ...], batch_size: int,
    generator: torch.Generator | None = None, device: torch.device | str | None = None, **kwargs,
) -> torch.Tensor:
    """`n` samples drawn `batch_size` at a time and gathered on the CPU, so memory stays bounded by one batch."""
    out = [diffusion.sample(model, min(batch_size, n - i), shape, generator=generator, device=device, **kwargs).cpu()
           for i in range(0, n, batch_size)]
    return torch.cat(out) if out else torch.empty(0, *shape)
