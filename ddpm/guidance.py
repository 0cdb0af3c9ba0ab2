"""Guided sampling: image completion (gradient guidance, DPS-style, the replacement baseline and both, MCG),
classifier-free guidance (Ho & Salimans 2022) and autoguidance (Karras et al. 2024).

Completion is a `StepHook` of the one sampling loop (samplers.run_chain): after each reverse step it adds
−s·∇ L, where L_i = Σ_pixels (y_m · (x̂_0 − y))² is image i's own loss (so a batch equals single images).
Classifier-free guidance and autoguidance are model wrappers, so they work with every sampler and with completion
alike. Convention: ε̃ = (1 + w)·ε_θ(x_t, c) − w·ε_θ(x_t, ∅), where ∅ is the context multiplied by zero; w = 0 is the
plain conditional model (diffusers' `guidance_scale` is 1 + w); autoguidance puts a worse model in ∅'s place.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .deprecation import renamed_attributes, warn_renamed
from .diffusion import Diffusion, NoisePredictor
from .samplers import Generators, StepHook, StepState, model_eps, randn, run_chain, time_batch

WRT = ("xt", "mean")  # what the completion gradient is taken with respect to
METHODS = ("gradient", "replace", "mcg")  # how completion uses the given pixels


# -- image completion --------------------------------------------------------------------------------------------
def check_completion_inputs(y: torch.Tensor, ymask: torch.Tensor, scale: float, wrt: str, method: str) -> torch.Tensor:
    """Validate the arguments of complete_image; return the mask broadcast to y's shape, as y's dtype."""
    if wrt not in WRT:
        raise ValueError(f"wrt = {wrt!r}: must be 'xt' (through the UNet) or 'mean' (of x_(t-1))")
    if method not in METHODS:
        raise ValueError(f"method = {method!r}: must be 'gradient', 'replace' or 'mcg' (gradient, then replacement)")
    if method == "mcg" and wrt != "xt":  # ∇ w.r.t. the mean lives on the given pixels, which replacement overwrites
        raise ValueError(f"wrt = {wrt!r}: method 'mcg' needs wrt='xt' (with 'mean' it would be plain replacement)")
    if not (isinstance(scale, (int, float)) and scale >= 0):
        raise ValueError(f"scale = {scale!r}: must be a number ≥ 0")
    if y.ndim != 4:
        raise ValueError(f"y: must be a batch of images (N, C, H, W), got shape {tuple(y.shape)}")
    if y.min() < -1 - 1e-6 or y.max() > 1 + 1e-6 or torch.isnan(y).any():
        raise ValueError(f"y: pixels must lie in [-1, 1], got [{y.min():.3f}, {y.max():.3f}]")
    try:
        mask = torch.broadcast_to(ymask, y.shape)
    except RuntimeError:
        raise ValueError(f"ymask: shape {tuple(ymask.shape)} does not broadcast to y's {tuple(y.shape)}") from None
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("ymask: must be binary (0 = hidden, 1 = given)")
    return mask.to(y.dtype)


def masked_sq_error(x0: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L = Σ_i Σ_pixels (y_m·(x̂_0 − y))²: a sum of per-image losses, so ∇ of image i involves image i only."""
    return (mask * (x0 - y)).pow(2).sum()


def clip_straight_through(x0: torch.Tensor) -> torch.Tensor:
    """x̂_0 clipped to [−1, 1] in value, with the gradient of the identity (a saturated pixel is still pulled toward y)."""
    return x0 + (x0.clamp(-1, 1) - x0).detach()


def grad_wrt_xt(diffusion: Diffusion, model: NoisePredictor, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                mask: torch.Tensor, clip: bool, **model_kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(ε̂, ∇_{x_t} L) with x̂_0 = predict_x0_from_eps(x_t, t, ε_θ(x_t, t)): back-propagation through the UNet (DPS)."""
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        eps = diffusion.eps_from_output(x_in, t, model(x_in, t, **model_kwargs).to(x.dtype))
        x0 = diffusion.predict_x0_from_eps(x_in, t, eps, clip=False)
        loss = masked_sq_error(clip_straight_through(x0) if clip else x0, y, mask)
        grad = torch.autograd.grad(loss, x_in)[0]
    return eps.detach(), grad


def grad_wrt_mean(diffusion: Diffusion, mean: torch.Tensor, var: torch.Tensor, t_prev: int, eps: torch.Tensor,
                  y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """∇_μ L with x̂_0(μ) = (μ − √(1 − ᾱ_s − σ²) ε̂)/√ᾱ_s, s = t_prev: the inverse of the step's own mean.

    Every sampler's mean has the form μ = √ᾱ_s x̃_0 + √(1 − ᾱ_s − σ²) ε̂ (σ² its variance, ε̂ re-derived from the
    clipped x̂_0; x̃_0 = x̂_0 for the ancestral and DDIM steps, DPM-Solver++'s extrapolated x̂_0 after its first step),
    so x̂_0(μ) is exactly the x̃_0 the step used, and ∇_μ L = 2·y_m·(x̃_0 − y)/√ᾱ_s: no pass through the UNet.
    At the last step (s = −1, ᾱ = 1, σ = 0) x̂_0(μ) = μ.
    """
    ab = diffusion.alpha_bar_at(time_batch(t_prev, mean), mean)
    with torch.enable_grad():
        mu = mean.detach().requires_grad_(True)
        x0 = (mu - (1 - ab - var).clamp(min=0).sqrt() * eps) / ab.sqrt()
        return torch.autograd.grad(masked_sq_error(x0, y, mask), mu)[0]


class GradientHook:
    """x_{t-1} = μ + σz − s·∇ L: ∇ w.r.t. x_t through the UNet (wrt="xt", DPS) or w.r.t. the mean μ of x_{t-1}
    with ε̂ held fixed (wrt="mean": no back-propagation through the UNet)."""

    def __init__(self, diffusion: Diffusion, y: torch.Tensor, mask: torch.Tensor, scale: float, wrt: str,
                 clip: bool = True, **model_kwargs: Any) -> None:
        self.d, self.y, self.mask, self.scale, self.wrt, self.clip = diffusion, y, mask, scale, wrt, clip
        self.model_kwargs, self.grad = model_kwargs, None

    def predict(self, model: NoisePredictor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.wrt == "xt" and self.scale > 0:
            eps, self.grad = grad_wrt_xt(self.d, model, x, t, self.y, self.mask, self.clip, **self.model_kwargs)
            return eps
        return model_eps(self.d, model, x, t, **self.model_kwargs)

    def correct(self, x_prev: torch.Tensor, step: StepState, generator: Generators) -> torch.Tensor:
        if self.scale == 0:
            return x_prev
        if self.wrt == "mean":
            tt = time_batch(step.t, step.x)
            x0 = self.d.predict_x0_from_eps(step.x, tt, step.eps, self.clip)
            eps = self.d.predict_eps_from_x0(step.x, tt, x0)  # the ε̂ the step used, consistent with the clipped x̂_0
            self.grad = grad_wrt_mean(self.d, step.mean, step.var, step.t_prev, eps, self.y, self.mask)
        return x_prev - self.scale * self.grad


class ReplacementHook:
    """The replacement baseline: after each step the given pixels are overwritten by y noised to level t_prev."""

    def __init__(self, diffusion: Diffusion, y: torch.Tensor, mask: torch.Tensor, **model_kwargs: Any) -> None:
        self.d, self.y, self.mask, self.model_kwargs = diffusion, y, mask, model_kwargs

    def predict(self, model: NoisePredictor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model_eps(self.d, model, x, t, **self.model_kwargs)

    def correct(self, x_prev: torch.Tensor, step: StepState, generator: Generators) -> torch.Tensor:
        if step.t_prev < 0:
            return self.mask * self.y + (1 - self.mask) * x_prev
        t_prev = time_batch(step.t_prev, self.y)
        y_noisy = self.d.q_sample(self.y, t_prev, randn(tuple(self.y.shape), generator, self.y.device))
        return self.mask * y_noisy + (1 - self.mask) * x_prev


class ProjectedGradientHook:
    """MCG (Chung et al. 2022, manifold-constrained gradient): the gradient step w.r.t. x_t through the UNet, then the
    given pixels replaced by y noised to t_prev. The gradient carries the given half's evidence into the hidden one;
    the replacement keeps the given half on the forward process's marginal q(x_{t_prev} | y)."""

    def __init__(self, gradient: GradientHook, replacement: ReplacementHook) -> None:
        self.gradient, self.replacement = gradient, replacement

    def predict(self, model: NoisePredictor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.gradient.predict(model, x, t)

    def correct(self, x_prev: torch.Tensor, step: StepState, generator: Generators) -> torch.Tensor:
        return self.replacement.correct(self.gradient.correct(x_prev, step, generator), step, generator)


def complete_image(
    diffusion: Diffusion, model: NoisePredictor, y: torch.Tensor, ymask: torch.Tensor, scale: float = 1.0,
    wrt: str = "xt", *, method: str = "gradient", generator: Generators = None, clip: bool = True,
    model_kwargs: dict[str, Any] | None = None, guidance: str | None = None, **sampler_kwargs: Any,
) -> torch.Tensor:
    """Fill in the hidden pixels of y (ymask = 0) with samples consistent with the given ones (ymask = 1).

    method="gradient": x_{t-1} = μ + σz − s·∇ Σ_pixels (y_m·(x̂_0 − y))², the gradient w.r.t. x_t through the
    UNet (wrt="xt") or w.r.t. the mean of x_{t-1} (wrt="mean"); method="replace": the replacement baseline;
    method="mcg": the x_t gradient step, then replacement (`ProjectedGradientHook`; the given half ends equal to y).
    sampler_kwargs (sampler, steps, eta) choose the sampler as in `samplers.sample`. Returns images in [−1, 1];
    a mask that hides nothing returns y; one that hides everything is `sample`. (`guidance=` is 0.7's name of
    `method=`, deprecated.)
    """
    if guidance is not None:
        warn_renamed("complete_image(guidance=…)", "complete_image(method=…)")
        method = guidance
    mask = check_completion_inputs(y, ymask, scale, wrt, method)
    if bool(mask.all()):
        return y.clone()
    kwargs = model_kwargs or {}
    hook: StepHook = (ReplacementHook(diffusion, y, mask, **kwargs) if method == "replace"
                      else GradientHook(diffusion, y, mask, scale, wrt, clip, **kwargs))
    if method == "mcg":
        hook = ProjectedGradientHook(hook, ReplacementHook(diffusion, y, mask, **kwargs))
    x = randn(tuple(y.shape), generator, y.device)
    return run_chain(diffusion, model, x, generator=generator, clip=clip, hook=hook, **sampler_kwargs)


# -- classifier-free guidance ------------------------------------------------------------------------------------
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
    """ε̃(x_t, t) = (1 + w)·ε(x_t, c) − w·ε(x_t, 0), both halves in one batched forward pass. One context row serves a
    batch of any size (every image asks for the same c)."""

    def __init__(self, model: nn.Module, context: torch.Tensor, guidance: float) -> None:
        super().__init__()
        if guidance < 0:
            raise ValueError(f"guidance = {guidance}: must be ≥ 0 (0 is the plain conditional model)")
        self.model, self.context, self.guidance = model, context, guidance

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        context = self.context.expand(len(x), -1) if len(self.context) == 1 else self.context
        if self.guidance == 0:
            return self.model(x, t, context=context)
        both = self.model(torch.cat([x, x]), torch.cat([t, t]), context=torch.cat([context, torch.zeros_like(context)]))
        cond, uncond = both.chunk(2)
        return (1 + self.guidance) * cond - self.guidance * uncond


class AutoGuidance(nn.Module):
    """ε̃(x_t, t) = (1 + w)·ε_θ(x_t, t) − w·ε_bad(x_t, t): guidance of a model by a worse version of itself (Karras et
    al. 2024, "Guiding a diffusion model with a bad version of itself"; their w is 1 + ours). `bad` has the good
    model's kinds of errors, only stronger (here: the same run's EMA weights after a few hundred steps), so the
    difference points away from them; unlike classifier-free guidance it needs no condition and keeps the variety.
    Linear in the network's output, so it holds for v-prediction alike. w = 0 is the plain model."""

    def __init__(self, model: nn.Module, bad: nn.Module, guidance: float) -> None:
        super().__init__()
        if guidance < 0:
            raise ValueError(f"autoguidance = {guidance}: must be ≥ 0 (0 is the plain model)")
        self.model, self.bad, self.guidance = model, bad, guidance

    def forward(self, x: torch.Tensor, t: torch.Tensor, **model_kwargs: Any) -> torch.Tensor:
        good = self.model(x, t, **model_kwargs)
        if self.guidance == 0:
            return good
        return (1 + self.guidance) * good - self.guidance * self.bad(x, t, **model_kwargs)


__getattr__ = renamed_attributes(globals(), {"GradientGuide": "GradientHook", "ReplacementGuide": "ReplacementHook",
                                             "ProjectedGradientGuide": "ProjectedGradientHook", "ROUTES": "WRT",
                                             "GUIDANCES": "METHODS"})
