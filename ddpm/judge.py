"""The MNIST judge: a small CNN that tells the ten digits apart and rejects what is not a digit.

Its softmax has an eleventh class, "not a digit", trained on synthetic rejects (uniform and Gaussian noise, smooth
blobs, blurred digits); a temperature fitted on held-out training digits calibrates its confidences. Its
penultimate features are the space of fid_clf. `recognizable` is the share of images whose most probable digit has
probability ≥ 0.9, so noise and blur, which the reject class absorbs, do not count.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.functional import gaussian_blur
from tqdm.auto import tqdm

from .io import load_torch
from .metrics import split_test

FEATURE_DIM = 64  # ≥ 64 for fid_clf; small enough that a few hundred samples estimate Σ
REJECT = 10       # the class index of "not a digit"
BLUR_SIGMA = 1.5  # the judge's blurred test row: digits a reader can guess, not a sample to call good
WIDTHS = (16, 32, 32)  # measured: 99.2 % test accuracy in 48 s of training on a 2-core AVX2 CPU


class Judge(nn.Module):
    """conv16 → pool → conv32 → pool → conv32 → fc 64 (features) → fc 11 (ten digits, not a digit); input in [−1, 1].

    Small on purpose: it trains to ≥ 99 % test accuracy in under a minute on a 2-core CPU."""

    def __init__(self, feature_dim: int = FEATURE_DIM, widths: tuple[int, int, int] = WIDTHS) -> None:
        super().__init__()
        a, b, c = widths
        self.body = nn.Sequential(
            nn.Conv2d(1, a, 3, padding=1), nn.BatchNorm2d(a), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(b, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Flatten(), nn.Linear(c * 7 * 7, feature_dim), nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(feature_dim, REJECT + 1)
        self.register_buffer("temperature", torch.ones(()))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations φ(x), (N, feature_dim)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the 11 classes (before the calibration temperature)."""
        return self.classifier(self.dropout(self.features(x)))


@dataclass
class JudgeOutput:
    features: torch.Tensor  # (N, D)
    probs: torch.Tensor     # (N, 10): the digits' calibrated probabilities (the rest is "not a digit")


@torch.no_grad()
def judge_images(judge: Judge, x: torch.Tensor, batch_size: int = 100) -> JudgeOutput:
    """Features and calibrated digit probabilities of images in [−1, 1], batched (bounded memory).

    100 per batch: the activations stay in cache; on a 2-core AVX2 EPYC 1 000 per batch took twice as long."""
    judge.eval()
    device = next(judge.parameters()).device
    feats, probs = [], []
    for i in range(0, len(x), batch_size):
        f = judge.features(x[i:i + batch_size].to(device).float())
        feats.append(f.cpu())
        probs.append(F.softmax(judge.classifier(f) / judge.temperature, dim=1)[:, :REJECT].cpu())
    return JudgeOutput(torch.cat(feats), torch.cat(probs))


def reference_features(test_features: torch.Tensor) -> torch.Tensor:
    """The reference half of the judge's features of the whole test set: what every fid_clf is measured against.

    The judge stage, which judges the test set anyway, stores them in its checkpoint (`load_judge`):
    5 000 forward passes cost seconds on a 2-core CPU, once per scoring stage and per process otherwise."""
    return split_test(test_features)[1]


# -- what is not a digit --------------------------------------------------------------------------------------------
def smooth_noise(n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """Low-frequency noise in [−1, 1]: a 7×7 random field upsampled to 28×28 (blobs, not strokes)."""
    coarse = torch.randn(n, 1, 7, 7, generator=generator).to(device)
    field = F.interpolate(coarse, size=(28, 28), mode="bicubic", align_corners=False)
    return (field / field.flatten(1).std(1).view(-1, 1, 1, 1).clamp(min=1e-6)).clamp(-1, 1)


def rejects(digits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """As many non-digits as `digits`, a quarter of each kind: uniform noise, Gaussian noise, smooth blobs, and the
    digits blurred with σ ∈ [1, 3] (a strong blur leaves a blob no reader would name)."""
    n, device = len(digits), digits.device
    kinds = torch.randint(0, 4, (n,), generator=generator).to(device)
    out = torch.rand(n, 1, 28, 28, generator=generator).to(device) * 2 - 1
    gauss = (torch.randn(n, 1, 28, 28, generator=generator).to(device) * 0.5).clamp(-1, 1)
    out = torch.where((kinds == 1).view(-1, 1, 1, 1), gauss, out)
    out = torch.where((kinds == 2).view(-1, 1, 1, 1), smooth_noise(n, generator, device), out)
    sigma = float(1 + 2 * torch.rand((), generator=generator))  # one σ per batch: gaussian_blur takes a scalar
    out = torch.where((kinds == 3).view(-1, 1, 1, 1), gaussian_blur(digits, kernel_size=11, sigma=sigma), out)
    return out


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ±max_shift pixels (zero padding = background −1); no flips for digits."""
    n = len(x)
    padded = F.pad(x, [max_shift] * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(28)[None]).to(x.device)
    cols = (dx[:, None] + torch.arange(28)[None]).to(x.device)
    idx = torch.arange(n, device=x.device)[:, None, None]
    return padded[:, 0][idx, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


# -- training and calibration ---------------------------------------------------------------------------------------
def train_judge(
    x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float, seed: int, max_shift: int = 2,
    reject_share: float = 0.25,
) -> tuple[Judge, list[dict[str, float]]]:
    """Adam with one-cycle LR, random shifts, and `reject_share` of every batch made of synthetic non-digits
    (class REJECT); returns the judge (temperature 1) and per-epoch history."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    judge = Judge().to(x.device)
    opt = torch.optim.Adam(judge.parameters(), lr=lr)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    n_reject = round(batch_size * reject_share)
    history = []
    for epoch in range(epochs):
        judge.train()
        order, total, t0 = torch.randperm(len(x), generator=g).to(x.device), 0.0, time.time()
        for i in tqdm(range(0, len(x), batch_size), desc=f"judge epoch {epoch + 1}/{epochs}", leave=False):
            idx = order[i:i + batch_size]
            digits = random_shift(x[idx], max_shift, g)
            fake = rejects(digits[:n_reject], g)
            inputs = torch.cat([digits, fake])
            labels = torch.cat([y[idx], torch.full((len(fake),), REJECT, device=y.device)])
            loss = F.cross_entropy(judge(inputs), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        history.append({"epoch": epoch + 1, "loss": total / len(x), "seconds": time.time() - t0})
    return judge.eval(), history


@torch.no_grad()
def calibrate(judge: Judge, x: torch.Tensor, y: torch.Tensor) -> float:
    """Temperature scaling (Guo et al. 2017): the T that minimizes the NLL of held-out digits (x, y), set on the judge.

    A 1-D search over log T on a grid then a golden-section refinement; returns T."""
    judge.eval()
    logits = torch.cat([judge(x[i:i + 500]) for i in range(0, len(x), 500)]).double()
    y = y.to(logits.device)

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits / math.exp(log_t), y))

    grid = [i / 10 for i in range(-20, 31)]  # T from 0.14 to 20
    best = min(grid, key=nll)
    lo, hi = best - 0.1, best + 0.1
    for _ in range(30):
        a, b = hi - (hi - lo) / 1.618, lo + (hi - lo) / 1.618
        lo, hi = (lo, b) if nll(a) < nll(b) else (a, hi)
    judge.temperature.fill_(math.exp((lo + hi) / 2))
    return float(judge.temperature)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE: Σ_bins (n_b / N)·|accuracy_b − confidence_b| over equal-width confidence bins of the top digit."""
    conf, pred = probs.max(1)
    right = (pred == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.float().mean().item() * abs(right[inside].mean().item() - conf[inside].mean().item())
    return ece


def load_judge(path: Path | str, device: torch.device | str = "cpu") -> tuple[Judge, torch.Tensor]:
    """The judge's weights (with its temperature) and the reference features stored beside them, with one-line
    errors if the file is not a judge of this architecture."""
    state = load_torch(path, "judge checkpoint")
    judge = Judge()
    try:
        judge.load_state_dict(state["judge"] if isinstance(state, dict) and "judge" in state else state)
    except (RuntimeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a judge checkpoint of the expected architecture "
                         f"({str(e).splitlines()[0]}); re-run dvc repro judge") from e
    ref = state.get("reference") if isinstance(state, dict) else None
    if not isinstance(ref, torch.Tensor) or ref.ndim != 2 or ref.shape[1] != FEATURE_DIM:
        raise ValueError(f"{path}: holds no reference features of shape (N, {FEATURE_DIM}) "
                         "(written by an older judge stage); re-run dvc repro judge")
    return judge.to(device).eval(), ref


def judge_rows(judge: Judge, held_out: torch.Tensor, seed: int, blur_sigma: float = BLUR_SIGMA) -> dict[str, float]:
    """The share judged recognizable of real held-out digits, of uniform noise and of the digits blurred (σ): what a
    judge that cannot be fooled must tell apart (≥ 0.95, ≤ 0.05, ≤ 0.30)."""
    g = torch.Generator().manual_seed(seed)
    rows = {"real": held_out, "noise": torch.rand(held_out.shape, generator=g) * 2 - 1,
            "blurred": gaussian_blur(held_out, kernel_size=9, sigma=blur_sigma)}
    return {name: float((judge_images(judge, x).probs.max(1).values >= 0.9).float().mean()) for name, x in rows.items()}


def holdout_split(n: int, holdout: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (training, held out) of n images: `holdout` of them, chosen by a seeded permutation, calibrate."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[holdout:], order[:holdout]
