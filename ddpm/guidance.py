"""Guided sampling: image completion (gradient guidance, DPS-style, and the replacement baseline).

A guidance step is a small function of the state of one reverse step; `complete_image` runs
the same reverse loop as `Diffusion.sample` and adds −s·∇ L after each step, where
L_i = Σ_pixels (y_m · (x̂_0 − y))² is image i's own loss (so a batch equals single images).
"""
from __future__ import annotations

import torch

from .diffusion import Diffusion, NoisePredictor, randn

ROUTES = ("xt", "mean")
GUIDANCES = ("gradient", "replace")


def check_completion_inputs(y: torch.Tensor, ymask: torch.Tensor, scale: float, wrt: str, guidance: str) -> torch.Tensor:
    """Validate the arguments of complete_image; return the mask broadcast to y's shape, as y's dtype."""
    if wrt not in ROUTES:
        raise ValueError(f"wrt = {wrt!r}: must be 'xt' (through the UNet) or 'mean' (of x_(t-1))")
    if guidance not in GUIDANCES:
        raise ValueError(f"guidance = {guidance!r}: must be 'gradient' or 'replace'")
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


def complete_image(
    diffusion: Diffusion, model: NoisePredictor, y: torch.Tensor, ymask: torch.Tensor, scale: float = 1.0,
    wrt: str = "xt", *, guidance: str = "gradient", steps: int | None = None, eta: float = 0.0,
    method: str | None = None, clip: bool = True, generator: torch.Generator | list[torch.Generator] | None = None,
    **model_kwargs,
) -> torch.Tensor:
    """Fill in the hidden pixels of y (ymask = 0) with samples consistent with the given ones (ymask = 1).

    guidance="gradient": x_{t-1} = μ + σz − s·∇ L, with ∇ taken w.r.t. x_t through the UNet (wrt="xt", DPS)
    or w.r.t. the mean μ of x_{t-1} with ε̂ held fixed (wrt="mean": no back-propagation through the UNet).
    guidance="replace": after each step, the given pixels are overwritten by y noised to the new level.
    Returns images in [−1, 1]; a mask that hides nothing returns y; one that hides everything is `sample`.
    """
    mask = check_completion_inputs(y, ymask, scale, wrt, guidance)
    if bool(mask.all()):
        return y.clone()
    ancestral = diffusion.sampler_kind(steps, method)
    n, device = y.shape[0], y.device
    x = randn(tuple(y.shape), generator, device)
    through_unet = guidance == "gradient" and wrt == "xt" and scale > 0
    for t, t_prev in diffusion.reverse_steps(steps):
        tt = torch.full((n,), t, device=device, dtype=torch.long)
        if through_unet:
            eps, grad = grad_wrt_xt(diffusion, model, x, tt, y, mask, clip, **model_kwargs)
        else:
            with torch.no_grad():
                eps = model(x, tt, **model_kwargs).to(x.dtype)
        with torch.no_grad():
            mean, var = diffusion.reverse(x, t, t_prev, eps, ancestral=ancestral, eta=eta, clip=clip)
        if guidance == "gradient" and wrt == "mean" and scale > 0:
            x0 = diffusion.predict_x0(x, tt, eps, clip)
            grad = grad_wrt_mean(diffusion, mean, var, t_prev, diffusion.predict_eps(x, tt, x0), y, mask)
        with torch.no_grad():
            x = mean + var.sqrt() * randn(tuple(x.shape), generator, device) if t_prev >= 0 else mean
            if guidance == "gradient" and scale > 0:
                x = x - scale * grad
            elif guidance == "replace":
                y_noisy = (diffusion.q_sample(y, torch.full_like(tt, t_prev), randn(tuple(y.shape), generator, device))
                           if t_prev >= 0 else y)
                x = mask * y_noisy + (1 - mask) * x
    return x.clamp(-1, 1)


def clip_straight_through(x0: torch.Tensor) -> torch.Tensor:
    """x̂_0 clipped to [−1, 1] in value, with the gradient of the identity (a saturated pixel is still pulled toward y)."""
    return x0 + (x0.clamp(-1, 1) - x0).detach()


def grad_wrt_xt(diffusion: Diffusion, model: NoisePredictor, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                mask: torch.Tensor, clip: bool, **model_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """(ε̂, ∇_{x_t} L) with x̂_0 = predict_x0(x_t, t, ε_θ(x_t, t)): back-propagation through the UNet (DPS)."""
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        eps = model(x_in, t, **model_kwargs).to(x.dtype)
        x0 = diffusion.predict_x0(x_in, t, eps, clip=False)
        loss = masked_sq_error(clip_straight_through(x0) if clip else x0, y, mask)
        grad = torch.autograd.grad(loss, x_in)[0]
    return eps.detach(), grad


def grad_wrt_mean(diffusion: Diffusion, mean: torch.Tensor, var: torch.Tensor, t_prev: int, eps: torch.Tensor,
                  y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """∇_μ L with x̂_0(μ) = (μ − √(1 − ᾱ_s − σ²) ε̂)/√ᾱ_s, s = t_prev: the inverse of the step's own mean.

    The reverse step's mean is μ = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε̂ (σ² its variance; ε̂ re-derived from the clipped
    x̂_0), so x̂_0(μ) is exactly the step's x̂_0, and ∇_μ L = 2·y_m·(x̂_0 − y)/√ᾱ_s: no pass through the UNet.
    At the last step (s = −1, ᾱ = 1, σ = 0) x̂_0(μ) = μ.
    """
    ab = diffusion.alpha_bar_at(torch.full((mean.shape[0],), t_prev, device=mean.device, dtype=torch.long), mean)
    with torch.enable_grad():
        mu = mean.detach().requires_grad_(True)
        x0 = (mu - (1 - ab - var).clamp(min=0).sqrt() * eps) / ab.sqrt()
        return torch.autograd.grad(masked_sq_error(x0, y, mask), mu)[0]


def half_mask(shape: tuple[int, ...], hide: str) -> torch.Tensor:
    """A (1, 1, H, W) mask that hides the 'top' or 'bottom' half of the image (1 = given)."""
    h, w = shape[-2:]
    mask = torch.ones(1, 1, h, w)
    if hide == "bottom":
        mask[..., h // 2:, :] = 0
    elif hide == "top":
        mask[..., : h // 2, :] = 0
    else:
        raise ValueError(f"hide = {hide!r}: must be 'top' or 'bottom'")
    return mask


def half_tasks(images: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n images chosen by a seeded permutation, each twice: bottom half hidden, then top half hidden.

    Returns (indices (2n,), y (2n, C, H, W) with hidden pixels multiplied by zero, masks (2n, 1, H, W)).
    """
    if not 1 <= n <= len(images):
        raise ValueError(f"n = {n}: must be between 1 and the {len(images)} images available")
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    idx = torch.cat([idx, idx])
    masks = torch.cat([half_mask(images.shape, "bottom").expand(n, -1, -1, -1),
                       half_mask(images.shape, "top").expand(n, -1, -1, -1)])
    return idx, images[idx] * masks, masks


def completion_quality(completions: torch.Tensor, originals: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Consistency (MSE on given pixels), MSE on hidden pixels, and diversity among the k completions of an image.

    completions: (M, k, C, H, W); originals and masks: (M, C, H, W). Diversity is the mean over pairs of
    completions of the RMS difference on the hidden pixels.
    """
    m = masks[:, None].expand_as(completions)
    err = (completions - originals[:, None]) ** 2
    visible = (err * m).sum() / m.sum().clamp(min=1)
    hidden = (err * (1 - m)).sum() / (1 - m).sum().clamp(min=1)
    k = completions.shape[1]
    pair = []
    for a in range(k):
        for b in range(a + 1, k):
            unseen = (1 - masks).expand_as(completions[:, a])
            d = ((completions[:, a] - completions[:, b]) ** 2 * unseen).flatten(1).sum(1)
            pair.append((d / unseen.flatten(1).sum(1).clamp(min=1)).sqrt())
    diversity = torch.stack(pair).mean().item() if pair else 0.0
    return {"mse_visible": visible.item(), "mse_hidden": hidden.item(), "diversity": diversity}
