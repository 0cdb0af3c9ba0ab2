"""Image-completion tasks and their measurement: half-hidden test digits, the sweep's settings, quality figures."""
from __future__ import annotations

from typing import Any

import torch

ROUTE_NAMES = {"none": "no guidance", "replace": "replacement", "xt": "∇ w.r.t. x_t (through the UNet)",
               "mean": "∇ w.r.t. the mean of x_(t-1)", "mcg": "∇ w.r.t. x_t, then replacement (MCG)"}
GRADIENT_ROUTES = ("xt", "mean", "mcg")  # the routes swept over scales


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


def figure_tasks(images: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Assignment 3's six test images (a seeded choice) and their masks: bottom half hidden in 3, top half in 3."""
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:6]
    masks = torch.cat([half_mask(images.shape, "bottom")] * 3 + [half_mask(images.shape, "top")] * 3)
    return idx, masks


def sweep_settings(scales: list[float]) -> list[tuple[str, float]]:
    """(route, scale) of every row of the completion sweep: two baselines of complete_image, the gradient routes ×
    scales, then the lookup baseline (`nearest_completions`, no model)."""
    return ([("none", 0.0), ("replace", 0.0)] + [(route, s) for route in GRADIENT_ROUTES for s in scales]
            + [("nearest", 0.0)])


def nearest_completions(train: torch.Tensor, y: torch.Tensor, masks: torch.Tensor, k: int) -> torch.Tensor:
    """The lookup baseline: each task's k training images closest on the given pixels, argmin_i Σ m (x_i − y)²,
    their hidden pixels filling y's: m·y + (1 − m)·x_i. Not a model: what the given half alone says about the rest,
    so the judge's accuracy on these is a reference for the diffusion completions, not a bound.

    train: (N, C, H, W); y, masks: (M, C, H, W) and (M, 1, H, W). Returns (M·k, C, H, W), image-major like the
    sweep's completions. Distances as Σ m x² − 2 Σ m x y (+ a per-task constant): two matrix products."""
    if not 1 <= k <= len(train):
        raise ValueError(f"k = {k}: must be between 1 and the {len(train)} training images")
    m = masks.expand_as(y).flatten(1)
    flat = train.flatten(1).to(y.dtype)
    dist = flat.pow(2) @ m.T - 2 * flat @ (m * y.flatten(1)).T  # (N, M)
    nearest = dist.topk(k, dim=0, largest=False).indices.T.reshape(-1)  # (M·k,), task-major
    m_rep, y_rep = masks.repeat_interleave(k, 0), y.repeat_interleave(k, 0)
    return m_rep * y_rep + (1 - m_rep) * train[nearest].to(y.dtype)


def completion_kwargs(route: str, scale: float) -> dict[str, Any]:
    """complete_image's arguments for a sweep row: no guidance is the gradient route at scale 0."""
    if route not in ROUTE_NAMES:  # complete_image's routes; the lookup row ("nearest") is not one
        raise ValueError(f"route = {route!r}: must be one of {', '.join(ROUTE_NAMES)}")
    if route == "replace":
        return {"method": "replace", "scale": 0.0, "wrt": "mean"}
    if route == "mcg":
        return {"method": "mcg", "scale": scale, "wrt": "xt"}
    return {"method": "gradient", "scale": 0.0 if route == "none" else scale, "wrt": "mean" if route == "none" else route}


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


def sweep_row(route: str, scale: float, completions: torch.Tensor, predicted: torch.Tensor, labels: torch.Tensor,
              originals: torch.Tensor, masks: torch.Tensor, seconds: float) -> dict[str, Any]:
    """One row of the sweep's table: the share of completions (image-major, k per task) whose predicted class (the
    judge's) is their task's true label, `completion_quality`, and the time per completed image."""
    k = len(completions) // len(originals)
    right = predicted == labels.repeat_interleave(k)
    return {"route": route, "scale": scale, "accuracy": float(right.float().mean()),
            **completion_quality(completions.view(len(originals), k, *originals.shape[1:]), originals, masks),
            "seconds_per_image": seconds / len(completions), "n_images": len(originals), "k": k}


def best_rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per gradient route, the sweep row with the highest judge accuracy (ties: the smaller MSE on the given half)."""
    best = {}
    for route in GRADIENT_ROUTES:
        candidates = [r for r in rows if r["route"] == route]
        if not candidates:
            raise ValueError(f"the completion sweep has no row for route {route!r}; re-run dvc repro completion_sweep")
        best[route] = max(candidates, key=lambda r: (r["accuracy"], -r["mse_visible"]))
    return best
