"""Stage sample: 16 samples for the report's grid, and a larger batch for evaluation, from the EMA weights."""
import time
from pathlib import Path

import torch

from ddpm import params
from ddpm.cli import run_stage
from ddpm.diffusion import sample_batched
from ddpm.factory import load_for_sampling, make_diffusion, make_unet, pick_device
from ddpm.io import atomic_path, image_grid_pil, save_json, save_torch

CHECKPOINT, OUT = Path("data/mnist/model/checkpoint.pt"), Path("data/mnist/samples")


def main() -> None:
    p = params.load(["diffusion", "model", "sample"])
    sp = p["sample"]
    device = pick_device(sp["device"])
    diffusion = make_diffusion(p["diffusion"])
    model = load_for_sampling(CHECKPOINT, make_unet(p["model"], 1, diffusion.T), device, sp["amp"])
    g = torch.Generator(device).manual_seed(sp["seed"])
    steps = None if sp["steps"] == diffusion.T else sp["steps"]

    def draw(n: int) -> torch.Tensor:
        return sample_batched(diffusion, model, n, (1, 28, 28), sp["batch_size"], generator=g, device=device,
                              steps=steps, eta=sp["eta"], progress=True)

    t0 = time.time()
    grid = draw(sp["n_grid"])
    grid_seconds = time.time() - t0
    t0 = time.time()
    evaluation = draw(sp["n_eval"])
    save_torch(grid, OUT / "grid.pt")
    with atomic_path(OUT / "grid.png") as tmp:  # the 4×4 grid, 4× enlarged
        png = image_grid_pil(grid[:16], nrow=4)
        png.resize((png.width * 4, png.height * 4)).save(tmp, format="png")
    save_torch(evaluation, OUT / "eval.pt")
    sampler = "ancestral" if steps is None else f"DDIM {steps} steps, eta {sp['eta']}"
    save_json({"sampler": sampler, "n_grid": len(grid), "grid_seconds": grid_seconds,
               "n_eval": len(evaluation), "eval_seconds": time.time() - t0, "device": str(device)}, OUT / "info.json")
    print(f"{len(grid)} + {len(evaluation)} samples ({sampler}) in {OUT}")


if __name__ == "__main__":
    run_stage(main)
