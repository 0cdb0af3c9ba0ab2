"""Stage train_mnist (and train_mnist_cond with --conditional): train ε_θ on MNIST train, resuming from checkpoints.

--conditional trains the classifier-free-guidance twin: the digit label as a one-hot context, dropped
with probability cond.p_uncond (get_context_mask); its monitoring grid asks for digits 0–9.
"""
import sys
from pathlib import Path

import torch

from ddpm import distributed, params
from ddpm.cli import run_stage
from ddpm.conditional import context_dropout, digit_context, sample_with_context
from ddpm.data import load_mnist, verify_mnist
from ddpm.factory import autocast_dtype, make_diffusion, make_unet, with_autocast
from ddpm.io import image_grid_pil
from ddpm.train import TrainConfig, Trainer, fingerprint, fit_with_live

RAW = Path("data/mnist/raw")


def main() -> None:
    conditional = "--conditional" in sys.argv[1:]
    checkpoint = Path("data/mnist/model_cond/checkpoint.pt" if conditional else "data/mnist/model/checkpoint.pt")
    live_dir = Path("reports/train_mnist_cond" if conditional else "reports/train_mnist")
    p = params.load(["diffusion", "model", "train"] + (["cond"] if conditional else []))
    tp = dict(p["train"], **({"epochs": p["cond"]["epochs"]} if conditional else {}))
    world, device = distributed.init(tp["device"])
    verify_mnist(RAW)
    x, labels = load_mnist(RAW, "train", tp["max_images"])
    diffusion = make_diffusion(p["diffusion"])
    torch.manual_seed(tp["seed"])
    model = make_unet(p["model"], in_channels=1, num_timesteps=diffusion.T, context_dim=10 if conditional else 0).to(device)

    def monitor(ema: torch.nn.Module, epoch: int) -> None:
        ema = with_autocast(ema, autocast_dtype(tp["amp"], device))
        g = torch.Generator(device).manual_seed(tp["seed"] + 1)  # the same noise every epoch
        if conditional:  # digits 0–9, twice, at the sweep's middle guidance scale
            scales = p["cond"]["guidance_scales"]
            grid = sample_with_context(diffusion, ema, digit_context(list(range(10)) * 2), (1, 28, 28),
                                       scales[len(scales) // 2], 20, generator=g, steps=tp["monitor_steps"])
            trainer.live.log_image(f"monitor/epoch_{epoch:03d}.png", image_grid_pil(grid, nrow=10))
        else:
            grid = diffusion.sample(ema, tp["monitor_n"], (1, 28, 28), steps=tp["monitor_steps"], generator=g, device=device)
            trainer.live.log_image(f"monitor/epoch_{epoch:03d}.png", image_grid_pil(grid, nrow=8))

    trainer = Trainer(model, diffusion, x.to(device), TrainConfig.from_params(tp, autocast_dtype(tp["amp"], device)),
                      checkpoint, fingerprint(p["diffusion"], p["model"], tp, n_images=len(x),
                                              p_uncond=p["cond"]["p_uncond"] if conditional else None),
                      monitor=monitor, world=world)
    print(f"training on {device} × {world.size} process{'es' if world.size > 1 else ''} ({len(x)} images, {sum(q.numel() for q in model.parameters()) / 1e6:.2f} M parameters"
          f"{', conditional on the digit' if conditional else ''})")
    fit_with_live(trainer, live_dir,
                  context=digit_context(labels).to(device) if conditional else None,
                  context_dropout=context_dropout(p["cond"]["p_uncond"]) if conditional else None)
    distributed.shutdown()


if __name__ == "__main__":
    run_stage(main)
