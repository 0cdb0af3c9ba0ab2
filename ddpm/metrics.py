"""Sample-quality metrics in the judge's feature space: fid_clf, recognizable, coverage, memorization."""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy import linalg


def gaussian_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean μ and covariance Σ (unbiased) of features (N, D), in float64."""
    f = features.double().numpy()
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^{1/2}) (as pytorch-fid's calculate_frechet_distance)."""
    if not (np.isfinite(s1).all() and np.isfinite(s2).all() and np.isfinite(mu1).all() and np.isfinite(mu2).all()):
        raise ValueError("fid_clf: the features are not finite (NaN or infinite images?)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # a singular product is handled below
        try:
            covmean = linalg.sqrtm(s1 @ s2)
            if not np.isfinite(covmean).all():  # singular product: regularize as pytorch-fid does
                eps = 1e-6 * np.eye(len(s1))
                covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
        except (ValueError, linalg.LinAlgError) as e:
            raise ValueError(f"fid_clf: the matrix square root failed ({e}); too few or identical samples?") from None
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fid_clf(features: torch.Tensor, reference: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the judge's, not Inception's)."""
    if len(features) < 2 or len(reference) < 2:
        raise ValueError(f"fid_clf needs at least 2 images on each side, got {len(features)} and {len(reference)}")
    return frechet_distance(*gaussian_stats(features), *gaussian_stats(reference))


def recognizable(probs: torch.Tensor, threshold: float = 0.9) -> float:
    """Share of images whose top class probability is ≥ threshold."""
    return float((probs.max(dim=1).values >= threshold).float().mean())


def class_histogram(probs: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """Counts of the predicted (arg-max) class."""
    return torch.bincount(probs.argmax(dim=1), minlength=classes)


def top_class_share(probs: torch.Tensor) -> float:
    """The share of the most frequent predicted class (0.1 when all ten digits are equally frequent)."""
    return float(class_histogram(probs).max() / max(len(probs), 1))


def coverage(probs: torch.Tensor) -> float:
    """Entropy (nats) of the predicted-class histogram: log 10 ≈ 2.303 when all digits are equally frequent."""
    p = class_histogram(probs).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


@torch.no_grad()
def nearest_distance(x: torch.Tensor, bank: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """For each image in x, the L2 (pixel) distance to its nearest image in `bank`, computed in chunks.

    In float64: cdist's fast ‖x‖² + ‖y‖² − 2x·y form cancels, and in float32 a copy's distance came out 0.006 on
    one CPU and 0 on another."""
    b = bank.flatten(1).double()
    out = []
    for i in range(0, len(x), chunk):
        out.append(torch.cdist(x[i:i + chunk].flatten(1).double(), b).min(dim=1).values)
    return torch.cat(out).float()


def memorization(samples: torch.Tensor, held_out: torch.Tensor, train: torch.Tensor) -> dict[str, float]:
    """Median nearest-train distance of samples vs. of held-out real images; a ratio ≪ 1 suggests copying."""
    d_s = nearest_distance(samples, train)
    d_h = nearest_distance(held_out, train)
    return {"nn_train_dist_samples": float(d_s.median()), "nn_train_dist_test": float(d_h.median()),
            "nn_ratio": float(d_s.median() / d_h.median()),
            "share_closer_than_test_p1": float((d_s < torch.quantile(d_h, 0.01)).float().mean())}


def check_samples(x: torch.Tensor, where: str) -> torch.Tensor:
    """Samples must be float (N, 1, 28, 28) in [−1, 1] without NaN; otherwise a one-line error naming `where`."""
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
        raise ValueError(f"{where}: samples must be a float tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"{where}: samples must have shape (N, 1, 28, 28), got {tuple(x.shape)}")
    if len(x) < 2:
        raise ValueError(f"{where}: need at least 2 samples for the metrics, got {len(x)}")
    if torch.isnan(x).any():
        raise ValueError(f"{where}: {int(torch.isnan(x).flatten(1).any(1).sum())} samples contain NaN")
    if x.min() < -1 - 1e-4 or x.max() > 1 + 1e-4:
        raise ValueError(f"{where}: samples must lie in [-1, 1], got [{x.min():.3f}, {x.max():.3f}]")
    return x


def score(probs: torch.Tensor, features: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """fid_clf, recognizable and coverage of one batch."""
    return {"fid_clf": fid_clf(features, reference), "recognizable": recognizable(probs), "coverage": coverage(probs)}


def clip_score(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each image embedding with its prompt's embedding (both unit norm), (N,)."""
    return (image_emb * text_emb).sum(-1)


def embedding_diversity(emb: torch.Tensor) -> float:
    """Mean pairwise cosine distance 1 − cos among unit-norm embeddings (0: all identical)."""
    n = len(emb)
    if n < 2:
        return 0.0
    sim = emb @ emb.T
    return float((1 - sim).sum() / (n * (n - 1)))


MAX_COVERAGE = math.log(10)
def split_test(test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(held-out real digits, reference digits): the even- and odd-indexed halves of the test set, so that the floor
    row (held-out against reference) and the model rows (samples against reference) use the same N and reference.

    Interleaved, not first half against last: MNIST's test set puts its two writer populations in the first and
    the second 5 000 (the first is the cleaner), and comparing the halves inflated the real-digit floor several-fold."""
    return test[0::2], test[1::2]
