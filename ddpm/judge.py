"""The MNIST judge: a small CNN classifier whose penultimate features are the space for fid_clf."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .io import load_torch
from .metrics import split_test

FEATURE_DIM = 64  # ≥ 64 for fid_clf; small enough that a few hundred samples estimate Σ


class Judge(nn.Module):
    """conv32 → conv64 → pool → conv128 → pool → fc 64 (features) → fc 10 (logits); input in [−1, 1]."""

    def __init__(self, feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(128 * 7 * 7, feature_dim), nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.classifier = nn.Linear(feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations φ(x), (N, feature_dim)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


@dataclass
class JudgeOutput:
    features: torch.Tensor  # (N, D)
    probs: torch.Tensor     # (N, 10)


@torch.no_grad()
def judge_images(judge: Judge, x: torch.Tensor, batch_size: int = 100) -> JudgeOutput:
    """Features and class probabilities of images in [−1, 1], batched (bounded memory).

    100 per batch: the activations stay in cache; on a 2-core AVX2 EPYC 1 000 per batch took twice as long."""
    judge.eval()
    device = next(judge.parameters()).device
    feats, probs = [], []
    for i in range(0, len(x), batch_size):
        f = judge.features(x[i:i + batch_size].to(device).float())
        feats.append(f.cpu())
        probs.append(F.softmax(judge.classifier(f), dim=1).cpu())
    return JudgeOutput(torch.cat(feats), torch.cat(probs))


def reference_features(test_features: torch.Tensor) -> torch.Tensor:
    """The reference half of the judge's features of the whole test set: what every fid_clf is measured against.

    The judge stage, which judges the test set anyway, stores them in its checkpoint (`load_reference`):
    5 000 forward passes cost 10 s on a 2-core CPU, once per scoring stage and per process otherwise."""
    return split_test(test_features)[1]


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


def train_judge(
    x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float, seed: int, max_shift: int = 2,
) -> tuple[Judge, list[dict[str, float]]]:
    """Adam with one-cycle LR and random shifts; returns the judge and per-epoch loss history."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    judge = Judge().to(x.device)
    opt = torch.optim.Adam(judge.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    history = []
    for epoch in range(epochs):
        judge.train()
        order, total, t0 = torch.randperm(len(x), generator=g).to(x.device), 0.0, time.time()
        for i in tqdm(range(0, len(x), batch_size), desc=f"judge epoch {epoch + 1}/{epochs}", leave=False):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(judge(random_shift(x[idx], max_shift, g)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        history.append({"epoch": epoch + 1, "loss": total / len(x), "seconds": time.time() - t0})
    return judge.eval(), history


def load_judge(path: Path | str, device: torch.device | str = "cpu") -> tuple[Judge, torch.Tensor]:
    """The judge's weights and the reference features stored beside them (`reference_features`), with one-line
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
