"""Stage train_mnist: ε_θ trained on the MNIST training set; resumes from its checkpoint, logs to dvclive the loss,
a monitoring grid and the judge's figures for monitor_judge_n samples after every epoch (quality against minutes)."""
from pathlib import Path

from ddpm import distributed, params
from ddpm.data import load_mnist
from ddpm.device import autocast_dtype
from ddpm.diffusion import Diffusion
from ddpm.dvccache import cached_output_file
from ddpm.probe import QualityProbe
from ddpm.judge import load_judge
from ddpm.metrics import split_test
from ddpm.stage import run_stage
from ddpm.recipe import TrainingData, build_run

RAW, JUDGE = Path("data/mnist/raw"), Path("data/mnist/judge/judge.pt")
MODEL, LIVE = Path("data/mnist/model/checkpoint.pt"), Path("reports/train_mnist")
RESUME = Path("data/resume/train_mnist/checkpoint.pt")  # where a killed run resumes: not an output


def main() -> None:
    p = params.load_stage("train_mnist")
    tp = p["train_mnist"]
    world, device = distributed.init(tp["device"])
    x, _ = load_mnist(RAW, "train", tp["max_images"])
    probe = None
    if tp["monitor_judge_n"] and world.is_main:
        judge, reference = load_judge(JUDGE, device)
        probe = QualityProbe(Diffusion.from_params(p["diffusion"]), judge, reference,
                             split_test(load_mnist(RAW, "test")[0])[0], tp["monitor_judge_n"],
                             {"sampler": "ddim", "steps": tp["monitor_steps"], "eta": 1.0}, tp["seed"] + 2,
                             autocast_dtype(tp["amp"], device))
    last = (MODEL, cached_output_file("train_mnist", "data/mnist/model", "checkpoint.pt"))  # its last finished run
    about = {"title": "DDPM on MNIST", "data": f"MNIST, {len(x)} training digits",
             "probe": f"N = {tp['monitor_judge_n']}, DDIM {tp['monitor_steps']}, η = 1, unguided"}
    run = build_run("train_mnist", tp, p["diffusion"], p["model"], TrainingData(x), device, world, running=RESUME,
                    resume_from=last, probe=probe, about=about)
    run.run(LIVE, MODEL)
    distributed.shutdown()


if __name__ == "__main__":
    run_stage(main)
