"""Stage train_mnist: train ε_θ on MNIST train (60 000 images), resuming from the last epoch's checkpoint."""
from pathlib import Path

import torch
from dvclive import Live

from ddpm import params
from ddpm.cli import run_stage
from ddpm.data import load_mnist, verify_mnist
from ddpm.factory import autocast_dtype, make_diffusion, make_unet, pick_device
from ddpm.io import image_grid_pil
from ddpm.train import TrainConfig, Trainer, truncate_live_metrics

RAW, CHECKPOINT, LIVE = Path("data/mnist/raw"), Path("data/mnist/model/checkpoint.pt"), Path("reports/train_mnist")


def main() -> None:
    p = params.load(["diffusion", "model", "train"])
    tp = p["train"]
    device = pick_device(tp["device"])
    verify_mnist(RAW)
    x, _ = load_mnist(RAW, "train", tp["max_images"])
    diffusion = make_diffusion(p["diffusion"])
    torch.manual_seed(tp["seed"])
    model = make_unet(p["model"], in_channels=1, num_timesteps=diffusion.T).to(device)
    cfg = TrainConfig(
        epochs=tp["epochs"], batch_size=tp["batch_size"], lr=tp["lr"], warmup_steps=tp["warmup_steps"],
        ema_decay=tp["ema_decay"], grad_clip=tp["grad_clip"], seed=tp["seed"], log_every=tp["log_every"],
        autocast=autocast_dtype(tp["amp"], device),
    )
    # what must match for a checkpoint to be continued (epochs may grow: training goes on)
    fingerprint = {"diffusion": p["diffusion"], "model": p["model"], "n_images": len(x),
                   **{k: v for k, v in tp.items() if k not in ("epochs", "log_every", "monitor_n", "monitor_steps", "device")}}
    monitor_gen_seed = tp["seed"] + 1

    def monitor(ema: torch.nn.Module, epoch: int) -> None:
        g = torch.Generator(device).manual_seed(monitor_gen_seed)  # the same noise every epoch
        grid = diffusion.sample(ema, tp["monitor_n"], (1, 28, 28), steps=tp["monitor_steps"], generator=g, device=device)
        live.log_image(f"monitor/epoch_{epoch:03d}.png", image_grid_pil(grid, nrow=8))

    trainer = Trainer(model, diffusion, x.to(device), cfg, CHECKPOINT, fingerprint, monitor=monitor)
    resumed = trainer.try_resume()
    if resumed:
        truncate_live_metrics(LIVE / "plots", trainer.step)
    live = Live(str(LIVE), resume=resumed, dvcyaml=False, save_dvc_exp=False)
    trainer.live = live
    print(f"training on {device} ({len(x)} images, {sum(q.numel() for q in model.parameters()) / 1e6:.2f} M parameters)")
    history = trainer.fit()
    live.summary.update({"final_loss": history[-1]["loss"], "epochs": trainer.epoch,
                         "train_seconds": sum(h["seconds"] for h in history)})
    live.make_summary()


if __name__ == "__main__":
    run_stage(main)
