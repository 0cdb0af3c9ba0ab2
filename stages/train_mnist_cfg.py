"""Stage train_mnist_cfg: the classifier-free-guidance twin of train_mnist, with the digit's one-hot label as
context, dropped with probability p_uncond (get_context_mask); its monitoring grid asks for digits 0–9, twice."""
from pathlib import Path

from ddpm import distributed, params
from ddpm.labels import digit_context
from ddpm.data import load_mnist
from ddpm.dvccache import cached_output_file
from ddpm.guidance import context_dropout
from ddpm.stage import run_stage
from ddpm.recipe import TrainingData, build_run

RAW, MODEL, LIVE = Path("data/mnist/raw"), Path("data/mnist/model_cfg/checkpoint.pt"), Path("reports/train_mnist_cfg")
RESUME = Path("data/resume/train_mnist_cfg/checkpoint.pt")  # where a killed run resumes: not an output
UNCONDITIONAL = Path("data/mnist/model/checkpoint.pt")  # with init: train_mnist, the twin starts from its EMA weights


def main() -> None:
    p = params.load_stage("train_mnist_cfg")
    cp = p["train_mnist_cfg"]
    recipe = {**p["train_mnist"], **cp,  # train_mnist's recipe, with this section's epochs, batch, lr, device, amp, nproc
              "guide_step": 0}  # and no autoguidance snapshot
    world, device = distributed.init(recipe["device"])
    x, labels = load_mnist(RAW, "train", recipe["max_images"])
    last = (MODEL, cached_output_file("train_mnist_cfg", "data/mnist/model_cfg", "checkpoint.pt"))  # its last finished run
    data = TrainingData(x, digit_context(labels), context_dropout(cp["p_uncond"]))
    run = build_run("train_mnist_cfg", recipe, p["diffusion"], p["model"], data, device, world, running=RESUME,
                    resume_from=last, monitor_context=digit_context(list(range(10)) * 2), nrow=10,
                    init_from=UNCONDITIONAL if cp["init"] == "train_mnist" else None,
                    key_sections={k: "train_mnist_cfg" if k in cp else "train_mnist" for k in recipe},
                    about={"title": "DDPM on MNIST, given the digit (classifier-free guidance)",
                           "data": f"MNIST, {len(x)} training digits", "context": "the digit's one-hot label"})
    run.run(LIVE, MODEL)
    distributed.shutdown()


if __name__ == "__main__":
    run_stage(main)
