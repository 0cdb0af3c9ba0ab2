"""Stage judge: train the MNIST classifier whose features and calibrated confidences score the samples; it rejects
noise and blur (an eleventh class), and its temperature is fitted on held-out training digits."""
from pathlib import Path

from ddpm import params
from ddpm.data import load_mnist
from ddpm.device import pick_device
from ddpm.io import save_json, save_torch
from ddpm.judge import (calibrate, expected_calibration_error, holdout_split, judge_images, judge_rows,
                        reference_features, train_judge)
from ddpm.metrics import split_test
from ddpm.stage import run_stage

RAW, OUT, METRICS = Path("data/mnist/raw"), Path("data/mnist/judge/judge.pt"), Path("reports/judge/metrics.json")


def main() -> None:
    jp = params.load_stage("judge")["judge"]
    device = pick_device(jp["device"])
    x, y = load_mnist(RAW, "train", jp["max_images"])
    fit, held = holdout_split(len(x), min(jp["holdout"], len(x) // 5), jp["seed"])
    judge, history = train_judge(x[fit].to(device), y[fit].to(device), jp["epochs"], jp["batch_size"], jp["lr"],
                                 jp["seed"], reject_share=jp["reject_share"])
    temperature = calibrate(judge, x[held].to(device), y[held])
    xt, yt = load_mnist(RAW, "test")
    judged = judge_images(judge, xt)
    accuracy = float((judged.probs.argmax(1) == yt).float().mean())
    print(f"judge: test accuracy {accuracy:.4f}, temperature {temperature:.3f}")
    if accuracy < jp["min_accuracy"]:  # checked before anything is written: the last good judge stays
        raise ValueError(f"judge test accuracy {accuracy:.4f} < judge.min_accuracy = {jp['min_accuracy']}; "
                         "raise judge.epochs")
    rows = judge_rows(judge, split_test(xt)[0], jp["seed"])
    save_torch({"judge": judge.cpu().state_dict(), "history": history, "reference": reference_features(judged.features)},
               OUT)
    save_json({"accuracy": accuracy, "ece": expected_calibration_error(judged.probs, yt), "temperature": temperature,
               **{f"recognizable_{k}": v for k, v in rows.items()},
               "minutes": sum(h["seconds"] for h in history) / 60}, METRICS)


if __name__ == "__main__":
    run_stage(main)
