"""Stage completion_sweep@<route>-<scale>: completion quality of one guidance setting on held-out test digits.

Usage: python stages/completion_sweep.py ROUTE SCALE, ROUTE in {xt, mean, none, replace}.
"""
import sys
import time
from pathlib import Path

from ddpm import distributed, params
from ddpm.cli import run_stage
from ddpm.data import load_mnist
from ddpm.factory import load_for_sampling, make_diffusion, make_unet
from ddpm.guidance import completion_quality, half_tasks
from ddpm.io import save_json
from ddpm.judge import judge_images, load_judge

RAW, CHECKPOINT, JUDGE = Path("data/mnist/raw"), Path("data/mnist/model/checkpoint.pt"), Path("data/mnist/judge/judge.pt")
OUT = Path("reports/completion/sweep")


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("xt", "mean", "none", "replace"):
        raise ValueError("usage: completion_sweep.py {xt,mean,none,replace} SCALE")
    route, scale = sys.argv[1], float(sys.argv[2])
    p = params.load(["diffusion", "model", "completion"])
    cp = p["completion"]
    world, device = distributed.init(cp["device"])
    diffusion = make_diffusion(p["diffusion"])
    model = load_for_sampling(CHECKPOINT, make_unet(p["model"], 1, diffusion.T), device, cp["amp"])
    judge = load_judge(JUDGE, device)
    test, labels = load_mnist(RAW, "test")
    idx, y, masks = half_tasks(test, cp["sweep_images"], cp["seed"])
    k = cp["sweep_completions"]
    y_rep, m_rep = y.repeat_interleave(k, 0), masks.repeat_interleave(k, 0)  # image-major: k completions each
    steps = None if cp["steps"] == diffusion.T else cp["steps"]
    kwargs = dict(scale=0.0 if route == "none" else scale, wrt=route if route in ("xt", "mean") else "mean",
                  guidance="replace" if route == "replace" else "gradient", steps=steps, eta=cp["eta"])
    t0 = time.time()
    completions = distributed.run_sharded(  # under torchrun each rank completes its share; rank 0 gathers
        len(y_rep), cp["batch_size"], world,
        lambda lo, hi: diffusion.complete_image(model, y_rep[lo:hi].to(device), m_rep[lo:hi].to(device),
                                                generator=distributed.image_generators(cp["seed"], range(lo, hi), device),
                                                **kwargs),
        tuple(y.shape[1:]))
    distributed.shutdown()
    if not world.is_main:
        return
    seconds = time.time() - t0
    predicted = judge_images(judge, completions).probs.argmax(1)
    quality = completion_quality(completions.view(len(y), k, *y.shape[1:]), test[idx], masks)
    result = {"route": route, "scale": kwargs["scale"], "accuracy": float((predicted == labels[idx].repeat_interleave(k)).float().mean()),
              **quality, "seconds_per_image": seconds / len(completions), "n_images": len(y), "k": k, "device": str(device),
              "processes": world.size}
    save_json(result, OUT / f"{route}-{sys.argv[2]}.json")
    print(result)


if __name__ == "__main__":
    run_stage(main)
