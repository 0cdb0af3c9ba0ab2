"""Stage complete: assignment 3's figure: 6 test digits, their visible halves and 5 completions of each."""
from pathlib import Path

import torch

from ddpm import params
from ddpm.completion import ROUTE_NAMES, best_rows, completion_kwargs, figure_tasks
from ddpm.data import load_mnist
from ddpm.device import pick_device
from ddpm.diffusion import Diffusion
from ddpm.figures import completion_figure, save_figure
from ddpm.guidance import complete_image
from ddpm.io import read_json, save_json, save_torch
from ddpm.pretrained import load_unet
from ddpm.report import INPUT_SHAPES
from ddpm.stage import run_stage

RAW, MODEL = Path("data/mnist/raw"), Path("data/mnist/model")
SWEEP, OUT = Path("reports/completion_sweep/table.json"), Path("reports/complete")


def main() -> None:
    p = params.load_stage("complete")
    cp = p["complete"]
    scale = cp["scale"]
    if scale == "auto":  # the sweep's best scale for this route
        scale = best_rows(read_json(SWEEP, "completion sweep table", INPUT_SHAPES["completion"]))[cp["route"]]["scale"]
    device = pick_device(cp["device"])
    diffusion = Diffusion.from_params(p["diffusion"])
    model = load_unet(MODEL, p["diffusion"], device, cp["amp"],
                      batch=(6 * cp["n_per_image"], "complete.n_per_image"))
    test, labels = load_mnist(RAW, "test")
    idx, masks = figure_tasks(test, cp["figure_seed"])
    originals, visible = test[idx], test[idx] * masks
    k = cp["n_per_image"]
    completions = complete_image(
        diffusion, model, visible.repeat_interleave(k, 0).to(device), masks.repeat_interleave(k, 0).to(device),
        **completion_kwargs(cp["route"], scale), sampler=cp["sampler"], steps=cp["steps"], eta=cp["eta"],
        generator=torch.Generator(device).manual_seed(cp["seed"])).cpu().view(6, k, 1, 28, 28)
    save_torch({"indices": idx, "originals": originals, "visible": visible, "masks": masks,
                "completions": completions, "scale": scale, "route": cp["route"]}, Path("data/mnist/completion/figure.pt"))
    save_figure(completion_figure(originals, visible, masks, completions, labels[idx].tolist(),
                                  f"{ROUTE_NAMES[cp['route']]}, scale {scale}"), OUT / "completion.png", dpi=130)
    save_json({"scale": scale, "route": cp["route"], "test_indices": idx.tolist()}, OUT / "figure.json")
    print(f"completion figure: {OUT / 'completion.png'} ({ROUTE_NAMES[cp['route']]}, scale {scale})")


if __name__ == "__main__":
    run_stage(main)
