"""Every figure of the pipeline (matplotlib, seaborn): each function returns a Figure, the caller saves it."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # no display: figures are written to files
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from .io import atomic_path  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


Figures = dict[str, tuple[plt.Figure, dict[str, Any]]]  # file name → (figure, savefig's options)


def save_figures(figures: Figures, folder: Path) -> None:
    """Each figure to folder/<name> (save_figure)."""
    for name, (fig, options) in figures.items():
        save_figure(fig, folder / name, **options)


def save_figure(fig: plt.Figure, path: str | Path, **kwargs: Any) -> None:
    """Save a figure atomically (the format from the path's suffix), then close it: matplotlib keeps every figure
    open otherwise, and a stage draws many."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."), **kwargs)
    finally:
        plt.close(fig)


def loss_curve_figure(per_step: pd.DataFrame, per_epoch: pd.DataFrame, steps_per_epoch: int) -> plt.Figure:
    """The training loss: every logged window and the mean of each epoch."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(per_step["step"], per_step["loss"], lw=0.8, alpha=0.6, label="mean over each logging window")
    ax.plot(per_epoch["step"], per_epoch["loss"], "o-", lw=2, label="mean over the epoch")
    ax.set(xlabel=f"optimizer step ({steps_per_epoch} per epoch)", ylabel="L_simple = ‖ε − ε_θ‖²", yscale="log",
           title="Training loss")
    ax.legend()
    fig.tight_layout()
    return fig


def image_grid_figure(images: torch.Tensor, nrow: int, title: str, labels: Sequence[str] | None = None) -> plt.Figure:
    """Images in [−1, 1] on a grid of axes, with optional captions."""
    n = len(images)
    rows = (n + nrow - 1) // nrow
    fig, axes = plt.subplots(rows, nrow, figsize=(1.3 * nrow, 1.4 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(((images[i].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).squeeze(-1).numpy(),
                      cmap="gray", vmin=0, vmax=1)
            if labels:
                ax.set_title(labels[i], fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def monitor_figure(paths: Sequence[Path], max_rows: int = 10) -> plt.Figure:
    """The monitoring grids (the same noise every epoch) stacked, one row per epoch."""
    if len(paths) > max_rows:  # keep the first and the last, evenly in between
        keep = sorted({round(i * (len(paths) - 1) / (max_rows - 1)) for i in range(max_rows)})
        paths = [paths[i] for i in keep]
    fig, axes = plt.subplots(len(paths), 1, figsize=(8, 1.25 * len(paths) + 0.3), squeeze=False)
    for ax, path in zip(axes[:, 0], paths):
        ax.imshow(Image.open(path), cmap="gray")
        epoch = int(re.findall(r"\d+", path.stem)[-1])
        ax.set_ylabel(f"epoch {epoch}", rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Monitoring samples after each epoch (same noise, EMA weights, DDIM)")
    fig.tight_layout()
    return fig


def per_class_figure(images: torch.Tensor, probs: torch.Tensor, per_class: int = 8) -> plt.Figure:
    """For each digit, the samples the judge is most confident about (empty cells: too few of that class)."""
    fig, axes = plt.subplots(10, per_class, figsize=(per_class * 0.9, 10 * 0.95))
    conf, pred = probs.max(dim=1)
    for digit in range(10):
        idx = (pred == digit).nonzero().flatten()
        idx = idx[conf[idx].argsort(descending=True)][:per_class]
        for j, ax in enumerate(axes[digit]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(idx):
                ax.imshow(((images[idx[j], 0] + 1) / 2).numpy(), cmap="gray", vmin=0, vmax=1)
            if j == 0:
                ax.set_ylabel(str(digit), rotation=0, ha="right", va="center", fontsize=12)
    fig.suptitle("Samples grouped by the judge's label (most confident first)")
    fig.tight_layout()
    return fig


def histogram_figure(counts: Sequence[int]) -> plt.Figure:
    """The predicted-class histogram of the samples, against the uniform share."""
    fig, ax = plt.subplots(figsize=(6, 2.8))
    sns.barplot(x=list(range(10)), y=list(counts), ax=ax, color="#4c72b0")
    ax.axhline(sum(counts) / 10, color="k", ls="--", lw=1, label="uniform")
    ax.set(xlabel="digit predicted by the judge", ylabel="samples", title="Class histogram of the samples")
    ax.legend()
    fig.tight_layout()
    return fig


def sampler_figure(rows: Sequence[dict[str, Any]]) -> plt.Figure:
    """fid_clf and recognizable against the number of denoising steps, one line per sampler, η and autoguidance w (EMA
    weights)."""
    df = pd.DataFrame([r for r in rows if r["weights"] == "ema"]).sort_values("steps")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for (sampler, eta, w), group in df.groupby(["sampler", "eta", "autoguidance"]):
        label = (sampler if sampler != "ddim" else f"ddim, η = {eta:g}") + (f", autoguidance {w:g}" if w else "")
        style = "*" if sampler == "ancestral" else "o-"
        left.plot(group["steps"], group["fid_clf"], style, label=label, markersize=9 if style == "*" else 5)
        right.plot(group["steps"], group["recognizable"], style, label=label, markersize=9 if style == "*" else 5)
    left.set(xscale="log", yscale="log", xlabel="denoising steps", ylabel="fid_clf (lower is better)")
    right.set(xscale="log", xlabel="denoising steps", ylabel="recognizable")
    left.legend(fontsize=8)
    fig.suptitle("Sample quality against sampler and steps (the same model)")
    fig.tight_layout()
    return fig


def completion_figure(originals: torch.Tensor, visible: torch.Tensor, masks: torch.Tensor, completions: torch.Tensor,
                      labels: Sequence[int], subtitle: str) -> plt.Figure:
    """One row per test image: the original, its visible half (hidden half shaded), then the k completions."""
    n, k = completions.shape[:2]
    fig, axes = plt.subplots(n, k + 2, figsize=(1.25 * (k + 2), 1.3 * n + 0.6), squeeze=False)
    for i in range(n):
        shown = ((visible[i, 0] + 1) / 2).numpy()
        cells = [((originals[i, 0] + 1) / 2).numpy(), shown] + [((c[0] + 1) / 2).numpy() for c in completions[i]]
        for j, (ax, img) in enumerate(zip(axes[i], cells)):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            if j == 1:  # shade the hidden half so it reads as "unknown", not as black ink
                ax.imshow((1 - masks[i, 0]).numpy(), cmap="Reds", alpha=0.35 * (1 - masks[i, 0]).numpy(), vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        hidden = "bottom" if masks[i, 0, -1, 0] == 0 else "top"
        axes[i, 0].set_ylabel(f"digit {labels[i]}\n{hidden} hidden", fontsize=8)
    for j, title in enumerate(["original", "visible half"] + [f"completion {c + 1}" for c in range(k)]):
        axes[0, j].set_title(title, fontsize=8)
    fig.suptitle(f"Image completion ({subtitle})")
    fig.tight_layout()
    return fig


def completion_sweep_figure(rows: Sequence[dict[str, Any]], routes: dict[str, str]) -> plt.Figure:
    """Judge accuracy of the completions against the guidance scale, one line per gradient route in `routes` (route →
    label) that the sweep has, and the baselines (dashed: no guidance, replacement, the nearest training digits)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for route, label in routes.items():
        pts = sorted((r["scale"], r["accuracy"]) for r in rows if r["route"] == route)
        if pts:
            ax.plot([s for s, _ in pts], [a for _, a in pts], "o-", label=label)
    styles = {"none": ("k", "no guidance (scale 0)"), "replace": ("#c44e52", "replacement baseline"),
              "nearest": ("#8172b3", "nearest training digits (lookup)")}
    for r in rows:
        if r["route"] in styles:
            color, label = styles[r["route"]]
            ax.axhline(r["accuracy"], color=color, ls="--", lw=1, label=label)
    ax.set(xscale="log", xlabel="guidance scale s", ylabel="judge accuracy on completions", ylim=(0, 1.02),
           title="Completion accuracy against the guidance scale")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tradeoff_figure(rows: Sequence[dict[str, Any]], uncond: dict[str, Any]) -> plt.Figure:
    """Classifier-free guidance's trade-off: accuracy to the requested digit against fid_clf, one point per w."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot([r["fid_clf"] for r in rows], [r["accuracy"] for r in rows], "o-")
    for r in rows:
        ax.annotate(f"w={r['guidance']:g}", (r["fid_clf"], r["accuracy"]), textcoords="offset points", xytext=(5, -10), fontsize=8)
    ax.axvline(uncond["fid_clf"], color="k", ls="--", lw=1, label=f"unconditional (fid_clf {uncond['fid_clf']:.2f})")
    ax.set(xlabel="fid_clf (lower: closer to real digits)", ylabel="accuracy to the requested digit",
           title="Guidance trade-off (MNIST twin)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def guidance_grid_figure(prompts: Sequence[str], samples_by_scale: dict[str, torch.Tensor]) -> plt.Figure:
    """Rows: prompts; columns: guidance scales; one sample per cell (the same noise across a row)."""
    scales = list(samples_by_scale)
    fig, axes = plt.subplots(len(prompts), len(scales), figsize=(1.2 * len(scales) + 1.5, 1.1 * len(prompts) + 0.6),
                             squeeze=False)
    for j, w in enumerate(scales):
        for i, prompt in enumerate(prompts):
            ax = axes[i, j]
            img = samples_by_scale[w][i].float()
            ax.imshow(((img.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"w = {w}", fontsize=9)
            if j == 0:
                ax.set_ylabel(prompt, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Samples per prompt and guidance scale")
    fig.tight_layout()
    return fig


def clip_sweep_figure(rows: Sequence[dict[str, Any]]) -> plt.Figure:
    """CLIP score (prompt adherence) and diversity against the guidance scale."""
    scaled = sorted((r for r in rows if r["guidance"] != "uncond"), key=lambda r: r["guidance"])
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot([r["guidance"] for r in scaled], [r["clip_score"] for r in scaled], "o-", label="CLIP score")
    ax.set(xlabel="guidance w", ylabel="CLIP score (cosine)")
    ax2 = ax.twinx()
    ax2.plot([r["guidance"] for r in scaled], [r["diversity"] for r in scaled], "s--", color="#dd8452", label="diversity")
    ax2.set_ylabel("diversity (1 − cos)")
    ax2.grid(False)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="lower right", fontsize=8)
    ax.set_title("Prompted faces: adherence and diversity against guidance")
    fig.tight_layout()
    return fig


def overview_figure(samples: torch.Tensor, visible: torch.Tensor, masks: torch.Tensor,
                    completions: torch.Tensor) -> plt.Figure:
    """The README's picture: (up to) 16 samples, and half-hidden test digits with their completions."""
    n, k = completions.shape[:2]
    m = min(16, len(samples))
    side = math.ceil(math.sqrt(m))
    ratio = (1 + k) / n  # square cells: the right block is (1 + k) cells wide and n high, the left 4 × 4
    fig = plt.figure(figsize=(4 * (1 + ratio) + 0.5, 4.3))
    left, right = fig.add_gridspec(1, 2, width_ratios=[1, ratio], wspace=0.08, top=0.9)
    for i, cell in zip(range(m), left.subgridspec(side, side, wspace=0.04, hspace=0.04)):
        _show(fig.add_subplot(cell), samples[i, 0])
    cells = right.subgridspec(n, 1 + k, wspace=0.04, hspace=0.04)
    for i in range(n):
        ax = fig.add_subplot(cells[i, 0])
        _show(ax, visible[i, 0])
        ax.imshow((1 - masks[i, 0]).numpy(), cmap="Reds", alpha=0.35 * (1 - masks[i, 0]).numpy(), vmin=0, vmax=1)
        for j in range(k):
            _show(fig.add_subplot(cells[i, 1 + j]), completions[i, j, 0])
    fig.text(0.27, 0.94, f"{m} samples", ha="center")
    fig.text(0.73, 0.94, f"given half (hidden half shaded), then {k} completions", ha="center")
    return fig


def _show(ax: plt.Axes, image: torch.Tensor) -> None:
    ax.imshow(((image.float().clamp(-1, 1) + 1) / 2).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.axis("off")


def quality_vs_minutes_figure(curves: dict[str, pd.DataFrame], real_recognizable: float | None = None) -> plt.Figure:
    """The judge's figures against minutes of training, one line per curve (columns minutes, recognizable, fid_ratio):
    the share of recognizable samples, and fid_clf as a multiple of real digits' (1 = as close as real digits)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, df in curves.items():
        left.plot(df["minutes"], df["recognizable"], "o-", label=label)
        right.plot(df["minutes"], df["fid_ratio"], "o-", label=label)
    if real_recognizable is not None:
        left.axhline(real_recognizable, color="k", ls="--", lw=1, label="real digits")
    right.axhline(1.0, color="k", ls="--", lw=1, label="real digits")
    left.set(xlabel="minutes of training", ylabel="recognizable (judge p ≥ 0.9)", ylim=(-0.02, 1.02))
    right.set(xlabel="minutes of training", ylabel="fid_clf / real digits' fid_clf", yscale="log")
    # One legend under both panels (inside either, it hides the lines it names); the right panel has every line.
    handles, labels = right.get_legend_handles_labels()
    fig.suptitle("Sample quality against training time")
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 * math.ceil(len(labels) / 2), 1, 1))
    return fig
