"""Stage sample: 16 samples for the report's grid, and a larger batch for evaluation, from the EMA weights.

Under torchrun (sample.nproc > 1) every process draws its share; rank 0 gathers and writes. Image i's noise
comes from its own generator (seed, i), so any number of processes gives the same images.
"""
import time
from pathlib import Path

import torch

from ddpm import distributed, params
from ddpm.cli import run_stage
from ddpm.factory import load_for_sampling, make_diffusion, make_unet
from ddpm.io import atomic_path, image_grid_pil, save_json, save_torch

CHECKPOINT, OUT = Path("data/mnist/model/checkpoint.pt"), Path("data/mnist/samples")


def main() -> None:
    p = params.load(["diffusion", "model", "sample"])
    sp = p["sample"]
    world, device = distributed.init(sp["device"])
    diffusion = make_diffusion(p["diffusion"])
    model = load_for_sampling(CHECKPOINT, make_unet(p["model"], 1, diffusion.T), device, sp["amp"])
    steps = None if sp["steps"] == diffusion.T else sp["steps"]

    def draw(n: int, seed: int) -> torch.Tensor | None:
        return distributed.sample_sharded(diffusion, model, n, (1, 28, 28), sp["batch_size"], seed, world, device,
                                          steps=steps, eta=sp["eta"], progress=world.is_main)

    t0 = time.time()
    grid = draw(sp["n_grid"], sp["seed"])
    grid_seconds = time.time() - t0
    t0 = time.time()
    evaluation = draw(sp["n_eval"], sp["seed"] + 1)  # other seeds than the grid's: the grid is not in the evaluation
    distributed.shutdown()
    if not world.is_main:
        return
    save_torch(grid, OUT / "grid.pt")
    with atomic_path(OUT / "grid.png") as tmp:  # the 4×4 grid, 4× enlarged
        png = image_grid_pil(grid[:16], nrow=4)
        png.resize((png.width * 4, png.height * 4)).save(tmp, format="png")
    save_torch(evaluation, OUT / "eval.pt")
    sampler = "ancestral" if steps is None else f"DDIM {steps} steps, eta {sp['eta']}"
    save_json({"sampler": sampler, "n_grid": len(grid), "grid_seconds": grid_seconds,
               "n_eval": len(evaluation), "eval_seconds": time.time() - t0, "device": str(device),
               "processes": world.size}, OUT / "info.json")
    print(f"{len(grid)} + {len(evaluation)} samples ({sampler}) in {OUT}")


if __name__ == "__main__":
    run_stage(main)
