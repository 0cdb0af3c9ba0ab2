"""Stage sample: 16 samples for the report's grid, and a larger batch for evaluation, from the EMA weights.

Under torchrun (nproc > 1) every process draws its share; rank 0 gathers and writes. Image i's noise
comes from its own generator (seed, i), so any number of processes gives the same images.
"""
import time
from pathlib import Path

from ddpm import distributed, params
from ddpm.diffusion import Diffusion
from ddpm.io import save_json, save_png_grid, save_torch
from ddpm.pretrained import load_unet
from ddpm.stage import run_stage

MODEL, OUT = Path("data/mnist/model"), Path("data/mnist/samples")


def main() -> None:
    p = params.load_stage("sample")
    sp = p["sample"]
    world, device = distributed.init(sp["device"])
    diffusion = Diffusion.from_params(p["diffusion"])
    model = load_unet(MODEL, p["diffusion"], device, sp["amp"], batch=(sp["batch_size"], "sample.batch_size"),
                      autoguidance=sp["autoguidance"])
    seconds, images = {}, {}
    for name, n, seed in (("grid", sp["n_grid"], sp["seed"]), ("eval", sp["n_eval"], sp["seed"] + 1)):
        t0 = time.time()  # other seeds than the grid's: the grid is not in the evaluation
        images[name] = distributed.sample_sharded(diffusion, model, n, (1, 28, 28), sp["batch_size"], seed, world, device,
                                                  sampler=sp["sampler"], steps=sp["steps"], eta=sp["eta"],
                                                  progress=world.is_main)
        seconds[name] = time.time() - t0
    distributed.shutdown()
    if not world.is_main:
        return
    save_torch(images["grid"], OUT / "grid.pt")
    save_png_grid(images["grid"][:16], OUT / "grid.png", nrow=4, zoom=4)
    save_torch(images["eval"], OUT / "eval.pt")
    sampler = (f"{sp['sampler']}, {sp['steps']} steps" + (f", η = {sp['eta']}" if sp["sampler"] != "ancestral" else "")
               + (f", autoguidance w = {sp['autoguidance']:g}" if sp["autoguidance"] else ""))
    save_json({"sampler": sampler, "n_grid": sp["n_grid"], "grid_seconds": seconds["grid"], "n_eval": sp["n_eval"],
               "eval_seconds": seconds["eval"], "device": str(device), "processes": world.size}, OUT / "info.json")
    print(f"{sp['n_grid']} + {sp['n_eval']} samples ({sampler}) in {OUT}")


if __name__ == "__main__":
    run_stage(main)
