"""Stage sweep_mnist_cfg: the classifier-free-guidance twin sampled at each guidance scale w, and with the context
dropped ('uncond'), scored by the judge against the digits the prompts ask for; table, trade-off plot, grid."""
import time
from pathlib import Path

import torch

from ddpm import distributed, params
from ddpm.labels import digit_context, parse_digit_prompts
from ddpm.diffusion import Diffusion
from ddpm.evaluation import score_guided
from ddpm.figures import guidance_grid_figure, save_figure, tradeoff_figure
from ddpm.io import save_json, save_torch
from ddpm.judge import load_judge
from ddpm.pretrained import load_unet
from ddpm.stage import run_stage

MODEL, JUDGE = Path("data/mnist/model_cfg"), Path("data/mnist/judge/judge.pt")
OUT, SAMPLES = Path("reports/sweep_mnist_cfg"), Path("data/mnist/sweep_cfg/samples.pt")


def main() -> None:
    p = params.load_stage("sweep_mnist_cfg")
    cp = p["sweep_mnist_cfg"]
    world, device = distributed.init(cp["device"])
    diffusion = Diffusion.from_params(p["diffusion"])
    model = load_unet(MODEL, p["diffusion"], device, cp["amp"],
                      batch=(2 * cp["batch_size"], "sweep_mnist_cfg.batch_size"))  # guidance: two passes per image
    judge, reference = load_judge(JUDGE, device)
    digits = parse_digit_prompts(cp["prompts"])
    wanted = torch.tensor(digits).repeat_interleave(cp["n_per_prompt"])
    rows, grids = [], {}
    for w in [*cp["guidance_scales"], "uncond"]:
        t0 = time.time()  # a dropped context is a zero vector: 'uncond' is the unconditional model
        x = distributed.sample_sharded(diffusion, model, len(wanted), (1, 28, 28), cp["batch_size"], cp["seed"], world,
                                       device, context=digit_context(wanted) * (0.0 if w == "uncond" else 1.0),
                                       guidance=0.0 if w == "uncond" else w, sampler=cp["sampler"], steps=cp["steps"],
                                       eta=cp["eta"])
        seconds = time.time() - t0
        if world.is_main:  # rank 0 judges and writes
            rows.append({"guidance": w, **score_guided(judge, reference, x, wanted), "seconds": seconds})
            grids[str(w)] = x.view(len(digits), cp["n_per_prompt"], 1, 28, 28)[:, :8]
            print(rows[-1])
    distributed.shutdown()
    if world.is_main:
        scaled, uncond = rows[:-1], rows[-1]
        save_json(rows, OUT / "table.json")
        save_json([{k: r[k] for k in ("guidance", "accuracy", "fid_clf")} for r in scaled], OUT / "tradeoff.json")
        save_torch({"prompts": cp["prompts"], "digits": digits, "samples": grids}, SAMPLES)
        save_figure(tradeoff_figure(scaled, uncond), OUT / "tradeoff.png", dpi=130)
        save_figure(guidance_grid_figure(cp["prompts"], {w: g[:, 0] for w, g in list(grids.items())[:-1]}),
                    OUT / "grid.png", dpi=120)


if __name__ == "__main__":
    run_stage(main)
