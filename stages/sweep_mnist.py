"""Stage sweep_mnist@<w>: the conditional MNIST twin sampled at one guidance scale w, scored by the judge.

Usage: python stages/sweep_mnist.py W|uncond. Each prompt (e.g. 'a handwritten 7') gives cond.n_per_prompt
samples; 'uncond' draws the same number with the context dropped (the unconditional model, the reference row).
"""
import sys
import time
from pathlib import Path

import torch

from ddpm import distributed, params
from ddpm.cli import run_stage
from ddpm.conditional import digit_context, parse_digit_prompt
from ddpm.factory import load_for_sampling, make_diffusion, make_unet
from ddpm.io import save_json, save_torch
from ddpm.judge import judge_images, load_judge, load_reference
from ddpm.metrics import score

CHECKPOINT, JUDGE = Path("data/mnist/model_cond/checkpoint.pt"), Path("data/mnist/judge/judge.pt")


def main() -> None:
    if len(sys.argv) != 2:
        raise ValueError("usage: sweep_mnist.py GUIDANCE_SCALE")
    unconditional = sys.argv[1] == "uncond"
    w = 0.0 if unconditional else float(sys.argv[1])
    p = params.load(["diffusion", "model", "cond"])
    cp = p["cond"]
    digits = [parse_digit_prompt(prompt) for prompt in cp["prompts"]]
    world, device = distributed.init(cp["device"])
    diffusion = make_diffusion(p["diffusion"])
    model = load_for_sampling(CHECKPOINT, make_unet(p["model"], 1, diffusion.T, context_dim=10), device, cp["amp"])
    judge = load_judge(JUDGE, device)
    reference = load_reference(JUDGE)
    wanted = torch.tensor(digits).repeat_interleave(cp["n_per_prompt"])
    steps = None if cp["steps"] == diffusion.T else cp["steps"]
    t0 = time.time()
    context = digit_context(wanted) * (0.0 if unconditional else 1.0)  # a dropped context is a zero vector
    x = distributed.sample_sharded(diffusion, model, len(context), (1, 28, 28), cp["batch_size"], cp["seed"], world,
                                   device, context=context, guidance=w, steps=steps, eta=cp["eta"])
    distributed.shutdown()
    if not world.is_main:  # rank 0 judges and writes
        return
    seconds = time.time() - t0
    out = judge_images(judge, x)
    result = {"guidance": "uncond" if unconditional else w, "accuracy": float((out.probs.argmax(1) == wanted).float().mean()),
              **score(out.probs, out.features, reference), "n": len(x), "seconds": seconds, "device": str(device),
              "processes": world.size}
    save_json(result, Path("reports/cond_mnist/sweep") / f"{sys.argv[1]}.json")
    save_torch({"prompts": cp["prompts"], "digits": digits, "samples": x.view(len(digits), cp["n_per_prompt"], 1, 28, 28)[:, :8]},
               Path("data/mnist/cond_sweep") / f"{sys.argv[1]}.pt")
    print(result)


if __name__ == "__main__":
    run_stage(main)
