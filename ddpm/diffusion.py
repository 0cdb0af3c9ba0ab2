"""Gaussian diffusion: the forward process q, its posterior, the reverse-q step and the training loss.

One object holds every schedule-derived tensor (float64 on the CPU, cast on use), as in
openai/improved-diffusion's `gaussian_diffusion.py`. It is not an `nn.Module`, so an EMA
of the network never averages schedule buffers. Index convention: t ∈ [0, T) and t = 0 is
the first noising step, so ᾱ_{-1} := 1 and the posterior at t = 0 has variance 0.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from .deprecation import warn_renamed
from .modelfolder import CONFIG, ModelFolderError, read_config
from .schedule import named_betas

PREDICTIONS = ("eps", "v")
WEIGHTINGS = ("none", "min_snr")

# model(x_t, t, **kwargs) -> ε̂(x_t, t)
NoisePredictor = Callable[..., torch.Tensor]


class Diffusion:
    """The DDPM forward process x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε and its reverse, for a given β schedule; the network it
    trains predicts ε or v, and every reverse step works in ε̂ (`eps_from_output`)."""

    def __init__(self, betas: torch.Tensor, prediction: str = "eps", weighting: str = "none", snr_gamma: float = 5.0) -> None:
        """prediction: what the network outputs, "eps" (ε, Ho et al.) or "v" (v = √ᾱ ε − √(1−ᾱ) x_0, Salimans & Ho
        2022); weighting: "none" (L_simple) or "min_snr" (Hang et al. 2023, weights clipped at snr_gamma)."""
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction = {prediction!r}: must be one of {', '.join(PREDICTIONS)}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting = {weighting!r}: must be one of {', '.join(WEIGHTINGS)}")
        self.prediction, self.weighting, self.snr_gamma = prediction, weighting, snr_gamma
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
        self.snr = self.alphas_bar / (1 - self.alphas_bar)  # signal-to-noise ratio ᾱ_t / (1 − ᾱ_t)
        self._device_cache: dict[tuple[torch.device, torch.dtype, str], torch.Tensor] = {}

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> "Diffusion":
        """From the `diffusion` params section: {T, schedule, beta_start, beta_end, prediction, weighting, snr_gamma}."""
        return cls(named_betas(p["schedule"], p["T"], beta_start=p["beta_start"], beta_end=p["beta_end"]),
                   prediction=p["prediction"], weighting=p["weighting"], snr_gamma=p["snr_gamma"])

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "Diffusion":
        """The diffusion a model folder was trained with (config.json's "diffusion" section)."""
        config = read_config(folder)["diffusion"]
        try:
            return cls.from_params(config)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFolderError(f"{Path(folder) / CONFIG}: its 'diffusion' section is incomplete or wrong ({e})") from None

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
    def predict_x0_from_eps(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """x̂_0 = E[x_0 | x_t] = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, clipped to [−1, 1] when `clip`."""
        ab = self._at("alphas_bar", t, xt)
        x0 = (xt - (1 - ab).sqrt() * eps) / ab.sqrt()
        return x0.clamp(-1, 1) if clip else x0

    def predict_eps_from_x0(self, xt: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """ε = (x_t − √ᾱ_t x_0) / √(1 − ᾱ_t): the noise that takes x_0 to x_t."""
        ab = self._at("alphas_bar", t, xt)
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt()

    def p_mean_variance(
        self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, clip: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """p_θ(x_{t-1} | x_t) = q(x_{t-1} | x_t; t, ε̂) = q(x_{t-1} | x_t, x̂_0(x_t, ε̂)) = N(μ̃_t(x_t, x̂_0), β̃_t): the
        exercise's reverse-q, improved-diffusion's p_mean_variance given the network's ε̂ (0.7's `q_reverse`)."""
        return self.q_posterior(self.predict_x0_from_eps(xt, t, eps, clip), xt, t)

    def ddim_mean_variance(
        self, xt: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor, eps: torch.Tensor,
        eta: float = 0.0, clip: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """DDIM: x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε̂ + σ z, σ² = η²(1−ᾱ_s)/(1−ᾱ_t)(1 − ᾱ_t/ᾱ_s), s = t_prev."""
        x0 = self.predict_x0_from_eps(xt, t, eps, clip)
        eps = self.predict_eps_from_x0(xt, t, x0)  # consistent with the clipped x̂_0
        ab_t = self._at("alphas_bar", t, xt)
        ab_s = self.alpha_bar_at(t_prev, xt)
        var = eta**2 * (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)
        mean = ab_s.sqrt() * x0 + (1 - ab_s - var).clamp(min=0).sqrt() * eps
        return mean, var.expand_as(xt)

    # -- 0.7's names, deprecated: they go in 0.9 --------------------------------------------------
    def q_reverse(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        warn_renamed("Diffusion.q_reverse", "Diffusion.p_mean_variance")
        return self.p_mean_variance(*args, **kwargs)

    def ddim_reverse(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        warn_renamed("Diffusion.ddim_reverse", "Diffusion.ddim_mean_variance")
        return self.ddim_mean_variance(*args, **kwargs)

    def predict_x0(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        warn_renamed("Diffusion.predict_x0", "Diffusion.predict_x0_from_eps")
        return self.predict_x0_from_eps(*args, **kwargs)

    def predict_eps(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        warn_renamed("Diffusion.predict_eps", "Diffusion.predict_eps_from_x0")
        return self.predict_eps_from_x0(*args, **kwargs)

    # -- training ------------------------------------------------------------------------
    def v_target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """v = √ᾱ_t ε − √(1 − ᾱ_t) x_0: the velocity a v-prediction network learns."""
        ab = self._at("alphas_bar", t, x0)
        return ab.sqrt() * noise - (1 - ab).sqrt() * x0

    def eps_from_output(self, xt: torch.Tensor, t: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """ε̂ from the network's output: itself (prediction "eps"), or ε̂ = √(1 − ᾱ_t) x_t + √ᾱ_t v̂ ("v").

        Every sampler, completion route and guidance works in ε̂; the conversion is linear in the output, so
        classifier-free guidance may combine raw outputs."""
        if self.prediction == "eps":
            return output
        ab = self._at("alphas_bar", t, xt)
        return (1 - ab).sqrt() * xt + ab.sqrt() * output

    def loss_weights(self, t: torch.Tensor) -> torch.Tensor:
        """Per-sample weights of the loss: 1 (L_simple), or min-SNR-γ: min(SNR_t, γ)/SNR_t for ε,
        min(SNR_t, γ)/(SNR_t + 1) for v (both equal min(SNR, γ) times the weight that makes the loss an x_0-MSE)."""
        if self.weighting == "none":
            return torch.ones(t.shape, device=t.device)
        snr = self.snr[t.cpu()].to(t.device, torch.float32)  # float64 stays on the host (MPS has none)
        clipped = snr.clamp(max=self.snr_gamma)
        return clipped / snr if self.prediction == "eps" else clipped / (snr + 1)

    def loss(
        self, model: NoisePredictor, x0: torch.Tensor, t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None, **model_kwargs,
    ) -> torch.Tensor:
        """L = E_{t, x_0, ε} w(t)·‖target − f_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖², t ~ U[0, T): target ε (L_simple when
        w = 1, Ho et al.) or v; w(t) from `loss_weights`."""
        if t is None:
            t = torch.randint(0, self.T, (x0.shape[0],), device=x0.device)
        if noise is None:
            noise = torch.randn_like(x0)
        out = model(self.q_sample(x0, t, noise), t, **model_kwargs)
        target = noise if self.prediction == "eps" else self.v_target(x0, t, noise)
        if self.weighting == "none":
            return F.mse_loss(out.float(), target.float())
        per_sample = (out.float() - target.float()).pow(2).flatten(1).mean(1)
        return (self.loss_weights(t) * per_sample).mean()

    # -- sampling ------------------------------------------------------------------------
    def reverse_steps(self, steps: int | None = None) -> Iterator[tuple[int, int]]:
        """Pairs (t, t_prev) visited by a sampler, ending with t_prev = −1 (x_0)."""
        ts = self.timesteps(steps)
        yield from zip(ts, ts[1:] + [-1])
