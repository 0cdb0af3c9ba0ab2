"""Stage judge: train the MNIST classifier whose features and confidences score the samples."""
from pathlib import Path

from ddpm import params
from ddpm.cli import run_stage
from ddpm.data import load_mnist, verify_mnist
from ddpm.device import pick_device
from ddpm.io import save_json, save_torch
from ddpm.judge import judge_images, reference_features, train_judge

RAW, OUT, METRICS = Path("data/mnist/raw"), Path("data/mnist/judge/judge.pt"), Path("reports/judge/metrics.json")


def main() -> None:
    jp = params.load_stage("judge")["judge"]
    device = pick_device(jp["device"])
    verify_mnist(RAW)
    x, y = load_mnist(RAW, "train", jp["max_images"])
    judge, history = train_judge(x.to(device), y.to(device), jp["epochs"], jp["batch_size"], jp["lr"], jp["seed"])
    xt, yt = load_mnist(RAW, "test")
    judged = judge_images(judge, xt)
    accuracy = float((judged.probs.argmax(1) == yt).float().mean())
    print(f"judge: test accuracy {accuracy:.4f}")
    if accuracy < jp["min_accuracy"]:  # checked before anything is written: the last good judge stays
        raise ValueError(f"judge test accuracy {accuracy:.4f} < judge.min_accuracy = {jp['min_accuracy']}; "
                         "raise judge.epochs")
    reference = reference_features(judged.features)  # every scoring stage measures fid_clf against these
    save_torch({"judge": judge.cpu().state_dict(), "history": history, "reference": reference}, OUT)
    save_json({"accuracy": accuracy, "minutes": sum(h["seconds"] for h in history) / 60}, METRICS)


if __name__ == "__main__":
    run_stage(main)
