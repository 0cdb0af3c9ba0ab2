"""Stage evaluate: fid_clf, recognizable, coverage and memorization of the samples, beside reference rows."""
from pathlib import Path

from ddpm import params
from ddpm.data import load_mnist
from ddpm.device import pick_device
from ddpm.evaluation import evaluate_samples, reference_rows
from ddpm.io import load_torch, save_json, save_torch
from ddpm.judge import judge_images, load_judge
from ddpm.metrics import check_samples
from ddpm.stage import run_stage

RAW, SAMPLES, JUDGE = Path("data/mnist/raw"), Path("data/mnist/samples"), Path("data/mnist/judge/judge.pt")
OUT, REPORTS = Path("data/mnist/eval/judged.pt"), Path("reports/evaluate")


def main() -> None:
    ep = params.load_stage("evaluate")["evaluate"]
    judge, reference = load_judge(JUDGE, pick_device(ep["device"]))
    samples = check_samples(load_torch(SAMPLES / "eval.pt", "evaluation samples"), str(SAMPLES / "eval.pt"))
    grid = check_samples(load_torch(SAMPLES / "grid.pt", "sample grid"), str(SAMPLES / "grid.pt"))
    test, _ = load_mnist(RAW, "test")
    train, _ = load_mnist(RAW, "train")
    rows = reference_rows(test, len(samples), ep["blur_sigma"], ep["seed"])
    detail, probs = evaluate_samples(judge, reference, samples, rows, train)
    probs["grid"] = judge_images(judge, grid).probs
    save_torch(probs, OUT)
    save_json(detail, REPORTS / "detail.json")
    m = detail["model"]
    print(f"N = {len(samples)}: fid_clf {m['fid_clf']:.2f}, recognizable {m['recognizable']:.3f}, coverage {m['coverage']:.3f}")


if __name__ == "__main__":
    run_stage(main)
