"""Stage train_mnist: ε_θ trained on the MNIST training set; resumes from its checkpoint, logs to dvclive."""
from pathlib import Path

from ddpm import distributed, params
from ddpm.cli import run_stage
from ddpm.data import load_mnist, verify_mnist
from ddpm.train import make_trainer

RAW, CHECKPOINT, LIVE = Path("data/mnist/raw"), Path("data/mnist/model/checkpoint.pt"), Path("reports/train_mnist")


def main() -> None:
    p = params.load_stage("train_mnist")
    world, device = distributed.init(p["train_mnist"]["device"])
    verify_mnist(RAW)
    x, _ = load_mnist(RAW, "train", p["train_mnist"]["max_images"])
    trainer = make_trainer(p["train_mnist"], p["diffusion"], p["model"], x, CHECKPOINT, device, world)
    trainer.run(LIVE)
    distributed.shutdown()


if __name__ == "__main__":
    run_stage(main)
