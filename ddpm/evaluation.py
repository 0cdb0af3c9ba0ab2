"""Scoring samples with the judge: the model's rows beside reference rows, completions, and guided samples. (The
probe that scores samples during training is a training callback: ddpm/probe.py.)"""
from __future__ import annotations

from typing import Any

import torch
from torchvision.transforms.functional import gaussian_blur

from .judge import Judge, judge_images
from .metrics import class_histogram, memorization, score, split_test, top_class_share


def reference_rows(test: torch.Tensor, n: int, blur_sigma: float, seed: int) -> dict[str, torch.Tensor]:
    """The rows every model row is read against, N = n images each: held-out real test digits (the floor), the same
    digits blurred, uniform noise (the scale), and pairs of digits superposed (a non-digit the judge never saw in
    training: how far its rejection generalizes)."""
    held_out, _ = split_test(test)
    if n > len(held_out):
        raise ValueError(f"{n} samples to evaluate; at most {len(held_out)} (the held-out half of the test set)")
    g = torch.Generator().manual_seed(seed)
    real = held_out[:n]
    return {"floor_real_test": real, "noise": torch.rand(n, 1, 28, 28, generator=g) * 2 - 1,
            "blurred_test": gaussian_blur(real, kernel_size=9, sigma=blur_sigma),
            "superposed_test": (real + held_out[(torch.arange(n) + 1) % len(held_out)]) / 2}  # each with the next


def evaluate_samples(judge: Judge, reference: torch.Tensor, samples: torch.Tensor, rows: dict[str, torch.Tensor],
                     train: torch.Tensor) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """fid_clf, recognizable and coverage of the samples (row "model") and of each reference row, the samples'
    class histogram and memorization; and the judge's probabilities per row."""
    metrics: dict[str, Any] = {"n": len(samples), "n_reference": len(reference)}
    probs = {}
    for name, images in {"model": samples, **rows}.items():
        out = judge_images(judge, images)
        metrics[name] = score(out.probs, out.features, reference)
        probs[name] = out.probs
    metrics["model"]["class_histogram"] = class_histogram(probs["model"]).tolist()
    metrics["model"]["top_class_share"] = top_class_share(probs["model"])
    floor = metrics["floor_real_test"]
    metrics["model"].update(fid_ratio=metrics["model"]["fid_clf"] / floor["fid_clf"],
                            recognizable_ratio=metrics["model"]["recognizable"] / max(floor["recognizable"], 1e-9))
    metrics["memorization"] = memorization(samples, rows["floor_real_test"], train)
    return metrics, probs


def score_samples(judge: Judge, reference: torch.Tensor, samples: torch.Tensor) -> dict[str, float]:
    """fid_clf, recognizable and coverage of samples, and the largest share of one class (mode collapse shows)."""
    out = judge_images(judge, samples)
    return {**score(out.probs, out.features, reference), "top_class_share": top_class_share(out.probs)}


def score_against_floor(judge: Judge, reference: torch.Tensor, samples: torch.Tensor, floor_fid: float
                        ) -> dict[str, float]:
    """fid_clf, recognizable and coverage of samples, and fid_ratio = fid_clf / floor_fid (real digits' at the same N)."""
    out = judge_images(judge, samples)
    figures = score(out.probs, out.features, reference)
    return {**figures, "fid_ratio": figures["fid_clf"] / floor_fid}


def score_guided(judge: Judge, reference: torch.Tensor, samples: torch.Tensor, wanted: torch.Tensor) -> dict[str, float]:
    """Guided samples scored against the digits they were asked for: accuracy, fid_clf, recognizable, coverage."""
    out = judge_images(judge, samples)
    return {"accuracy": float((out.probs.argmax(1) == wanted).float().mean()),
            **score(out.probs, out.features, reference), "n": len(samples)}
