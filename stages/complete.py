"""Stage complete: assignment 3's figure: 6 test digits, their visible halves and 5 completions of each."""
import json
from pathlib import Path

import torch

from ddpm import params
from ddpm.cli import run_stage
from ddpm.data import load_mnist
from ddpm.factory import load_for_sampling, make_diffusion, make_unet, pick_device
from ddpm.guidance import half_mask
from ddpm.io import save_figure, save_json, save_torch
from ddpm.report import completion_figure

RAW, CHECKPOINT = Path("data/mnist/raw"), Path("data/mnist/model/checkpoint.pt")
SUMMARY, OUT = Path("reports/completion/metrics.json"), Path("reports/completion")


def main() -> None:
    p = params.load(["diffusion", "model", "completion"])
    cp = p["completion"]
    scale = cp["scale"]
    if scale == "auto":  # the best scale of the sweep for this route
        scale = json.loads(SUMMARY.read_text())[f"best_scale_{cp['wrt']}"]
    device = pick_device(cp["device"])
    diffusion = make_diffusion(p["diffusion"])
    model = load_for_sampling(CHECKPOINT, make_unet(p["model"], 1, diffusion.T), device, cp["amp"])
    test, labels = load_mnist(RAW, "test")
    idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(cp["figure_seed"]))[:6]
    masks = torch.cat([half_mask(test.shape, "bottom")] * 3 + [half_mask(test.shape, "top")] * 3)
    originals, visible = test[idx], test[idx] * masks
    k = cp["n_per_image"]
    g = torch.Generator(device).manual_seed(cp["seed"])
    completions = diffusion.complete_image(
        model, visible.repeat_interleave(k, 0).to(device), masks.repeat_interleave(k, 0).to(device), scale, cp["wrt"],
        steps=None if cp["steps"] == diffusion.T else cp["steps"], eta=cp["eta"], generator=g).cpu().view(6, k, 1, 28, 28)
    save_torch({"indices": idx, "originals": originals, "visible": visible, "masks": masks,
                "completions": completions, "scale": scale, "wrt": cp["wrt"]}, Path("data/mnist/completion/figure.pt"))
    save_figure(completion_figure(originals, visible, masks, completions, labels[idx].tolist(),
                                  f"scale {scale}, gradient w.r.t. {cp['wrt']}"), OUT / "completion.png", dpi=130)
    save_json({"scale": scale, "wrt": cp["wrt"], "test_indices": idx.tolist()}, OUT / "figure.json")
    print(f"completion figure: {OUT / 'completion.png'} (scale {scale}, wrt {cp['wrt']})")


if __name__ == "__main__":
    run_stage(main)
