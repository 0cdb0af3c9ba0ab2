"""Stage train_celeba: a CLIP-conditioned UNet on CelebA faces with classifier-free guidance.

Context in training: the CLIP image embedding of each face, multiplied by get_context_mask (dropped with
probability celeba_train.p_uncond). Monitoring after every epoch: the monitoring prompts' CLIP text embeddings.
"""
from pathlib import Path

import torch

from ddpm import distributed, params
from ddpm.celeba import random_hflip, to_model_range
from ddpm.cli import run_stage
from ddpm.conditional import context_dropout, sample_with_context
from ddpm.factory import autocast_dtype, make_diffusion, make_unet, with_autocast
from ddpm.io import image_grid_pil, load_torch
from ddpm.train import TrainConfig, Trainer, fingerprint, fit_with_live

DATA, EMB = Path("data/celeba/images.pt"), Path("data/celeba/clip/embeddings.pt")
CHECKPOINT, LIVE = Path("data/celeba/model/checkpoint.pt"), Path("reports/train_celeba")


def main() -> None:
    p = params.load(["diffusion", "celeba_model", "celeba_train"])
    tp = p["celeba_train"]
    world, device = distributed.init(tp["device"])
    images = load_torch(DATA, "preprocessed faces")["images"][: tp["max_images"] or None]
    emb = load_torch(EMB, "CLIP embeddings")
    context = emb["images"].float()
    if len(context) < len(images):
        raise ValueError(f"{EMB}: {len(context)} image embeddings for {len(images)} faces; re-run dvc repro embed_clip")
    context = context[: len(images)]
    diffusion = make_diffusion(p["diffusion"])
    torch.manual_seed(tp["seed"])
    size = images.shape[-1]
    model = make_unet(p["celeba_model"], in_channels=3, num_timesteps=diffusion.T, context_dim=context.shape[1]).to(device)
    monitor_context = torch.stack([emb["texts"][q] for q in tp["monitor_prompts"]])

    def monitor(ema: torch.nn.Module, epoch: int) -> None:
        ema = with_autocast(ema, autocast_dtype(tp["amp"], device))
        g = torch.Generator(device).manual_seed(tp["seed"] + 1)
        grid = sample_with_context(diffusion, ema, monitor_context, (3, size, size), tp["monitor_guidance"],
                                   len(monitor_context), generator=g, steps=tp["monitor_steps"])
        trainer.live.log_image(f"monitor/epoch_{epoch:03d}.png", image_grid_pil(grid, nrow=len(grid)))

    trainer = Trainer(model, diffusion, images.to(device), TrainConfig.from_params(tp, autocast_dtype(tp["amp"], device)),
                      CHECKPOINT, fingerprint(p["diffusion"], p["celeba_model"], tp, n_images=len(images), image_size=size,
                                              clip=emb["model"], context_dim=context.shape[1]),
                      monitor=monitor, transform=lambda x: random_hflip(to_model_range(x)), world=world)
    print(f"training on {device} × {world.size} process{'es' if world.size > 1 else ''} ({len(images)} faces, {sum(q.numel() for q in model.parameters()) / 1e6:.2f} M parameters, "
          f"{context.shape[1]}-d CLIP context)")
    fit_with_live(trainer, LIVE, context=context.to(device), context_dropout=context_dropout(tp["p_uncond"]))
    distributed.shutdown()


if __name__ == "__main__":
    run_stage(main)
