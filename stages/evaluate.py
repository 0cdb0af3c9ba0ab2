"""Stage evaluate: fid_clf, recognizable, coverage and memorization of the samples, with reference rows."""
from pathlib import Path

import torch
from torchvision.transforms.functional import gaussian_blur

from ddpm import params
from ddpm.cli import run_stage
from ddpm.data import load_mnist
from ddpm.factory import pick_device
from ddpm.io import load_torch, save_json, save_torch
from ddpm.judge import judge_images, load_judge, load_reference
from ddpm.metrics import check_samples, class_histogram, memorization, score, split_test

RAW, SAMPLES, JUDGE = Path("data/mnist/raw"), Path("data/mnist/samples"), Path("data/mnist/judge/judge.pt")
OUT, METRICS = Path("data/mnist/eval/judged.pt"), Path("reports/evaluate/metrics.json")


def main() -> None:
    ep = params.load(["evaluate"])["evaluate"]
    judge = load_judge(JUDGE, pick_device(ep["device"]))
    samples = check_samples(load_torch(SAMPLES / "eval.pt", "evaluation samples"), str(SAMPLES / "eval.pt"))
    grid = check_samples(load_torch(SAMPLES / "grid.pt", "sample grid"), str(SAMPLES / "grid.pt"))
    test, _ = load_mnist(RAW, "test")
    train, _ = load_mnist(RAW, "train")
    n = len(samples)
    held_out, ref_images = split_test(test)
    if n > len(held_out):
        raise ValueError(f"{SAMPLES / 'eval.pt'}: {n} samples; at most {len(held_out)} (the held-out half of the test set)")
    reference = load_reference(JUDGE)
    g = torch.Generator().manual_seed(ep["seed"])
    rows = {  # every row: N images against the same reference half of the test set
        "model": samples,
        "floor_real_test": held_out[:n],
        "noise": torch.rand(n, 1, 28, 28, generator=g) * 2 - 1,
        "blurred_test": gaussian_blur(held_out[:n], kernel_size=9, sigma=ep["blur_sigma"]),
    }
    metrics, judged = {"n": n, "n_reference": len(ref_images)}, {}
    for name, images in rows.items():
        out = judge_images(judge, images)
        metrics[name] = score(out.probs, out.features, reference)
        judged[name] = out.probs
    metrics["model"]["class_histogram"] = class_histogram(judged["model"]).tolist()
    metrics["memorization"] = memorization(samples, held_out[:n], train)
    judged["grid"] = judge_images(judge, grid).probs
    save_torch(judged, OUT)
    save_json(metrics, METRICS)
    m = metrics["model"]
    print(f"N = {n}: fid_clf {m['fid_clf']:.2f}, recognizable {m['recognizable']:.3f}, coverage {m['coverage']:.3f}")


if __name__ == "__main__":
    run_stage(main)
