"""Stage report: reports/index.html and reports/report.md: loss curve, samples, monitoring grids, derivation."""
import json
import math
from pathlib import Path

import torch
import yaml

from ddpm import params
from ddpm.checks import posterior_table
from ddpm.cli import run_stage
from ddpm.factory import make_diffusion
from ddpm.io import load_torch
from ddpm.report import (DERIVATION, image_grid_figure, loss_curve_figure, monitor_figure, read_live_metric,
                         save_figure, table_markdown, write_report)

LIVE, SAMPLES, CHECKPOINT = Path("reports/train_mnist/plots"), Path("data/mnist/samples"), Path("data/mnist/model/checkpoint.pt")
OUT = Path("reports")
FIG = OUT / "figures"


def main() -> None:
    p = params.load(["diffusion", "model", "train", "sample", "report"])
    diffusion = make_diffusion(p["diffusion"])
    history = load_torch(CHECKPOINT, "training checkpoint")["history"]
    info = json.loads((SAMPLES / "info.json").read_text())
    grid = load_torch(SAMPLES / "grid.pt", "sample grid")
    n_train = round(history[-1]["images_per_s"] * history[-1]["seconds"])
    steps_per_epoch = math.ceil(n_train / p["train"]["batch_size"])

    save_figure(loss_curve_figure(read_live_metric(LIVE, "train/loss"), read_live_metric(LIVE, "epoch/loss"),
                                  steps_per_epoch), FIG / "loss.png", dpi=130)
    save_figure(image_grid_figure(grid[:16], 4, f"16 samples ({info['sampler']}, EMA weights)"), FIG / "samples16.png", dpi=130)
    monitors = sorted((LIVE / "images" / "monitor").glob("epoch_*.png"))
    if monitors:
        save_figure(monitor_figure(monitors), FIG / "monitor.png", dpi=110)
    rows = posterior_table(diffusion, p["report"]["posterior_check_t"])

    train_s = sum(h["seconds"] for h in history)
    md = f"""# DDPM on MNIST

## Training
{len(history)} epochs of {n_train} images, batch {p['train']['batch_size']}: final epoch loss
**{history[-1]['loss']:.4f}**, {train_s / 60:.1f} minutes of training at {history[-1]['images_per_s']:.0f} images/s
on the last epoch ({info['device']}).

![loss curve](figures/loss.png)

{table_markdown([{k: h[k] for k in ('epoch', 'step', 'loss', 'seconds', 'images_per_s')} for h in history],
                {'loss': '.4f', 'seconds': '.0f', 'images_per_s': '.0f'})}

## 16 samples
Sampler: {info['sampler']}; {info['n_grid']} samples in {info['grid_seconds']:.1f} s on {info['device']}.

![16 samples](figures/samples16.png)

## Samples during training
{'![monitoring grids](figures/monitor.png)' if monitors else '(no monitoring grids were logged)'}

## Assignment 1: the posterior q(x_{{t-1}} | x_t, x_0)
{DERIVATION}
**Numerical check.** `Diffusion.q_posterior` (the closed form) against the posterior computed by brute force
(`ddpm.checks.brute_force_posterior`: the product of the two Gaussian densities on a fine grid, normalized by
quadrature, with no closed form used), for $x_0 = 0.6$, $x_t = -0.3$, on this run's schedule:

{table_markdown(rows, {'mu_closed': '.10f', 'mu_bayes': '.10f', 'var_closed': '.3e', 'var_bayes': '.3e', 'max_abs_diff': '.1e'})}

## Settings
```yaml
{yaml.safe_dump(p, sort_keys=False).strip()}
```
"""
    write_report(md, OUT, "DDPM on MNIST")
    print(f"report: {OUT / 'index.html'} and {OUT / 'report.md'}")


if __name__ == "__main__":
    run_stage(main)
