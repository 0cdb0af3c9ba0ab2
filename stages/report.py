"""Stage report: reports/index.html and reports/report.md, from what the other stages measured."""
import json
import math
from pathlib import Path

import yaml

from ddpm import params
from ddpm.checks import posterior_table
from ddpm.cli import run_stage
from ddpm.factory import make_diffusion
from ddpm.io import load_checkpoint, load_torch
from ddpm.report import (DERIVATION, completion_section, cond_section, histogram_figure, image_grid_figure, loss_curve_figure, monitor_figure,
                         per_class_figure, read_live_metric, recognizable_section, sampler_figure, sampler_section,
                         save_figure, table_markdown, training_section, write_report)

LIVE, SAMPLES, CHECKPOINT = Path("reports/train_mnist/plots"), Path("data/mnist/samples"), Path("data/mnist/model/checkpoint.pt")
EVAL, JUDGED, JUDGE = Path("reports/evaluate/metrics.json"), Path("data/mnist/eval/judged.pt"), Path("reports/judge/metrics.json")
SAMPLERS, OUT = Path("reports/compare/samplers.json"), Path("reports")
COMPLETION = Path("reports/completion")
FIG = OUT / "figures"


def main() -> None:
    p = params.load(["diffusion", "model", "train", "sample", "judge", "evaluate", "compare", "completion", "cond", "report"])
    history = load_checkpoint(CHECKPOINT)["history"]
    info = json.loads((SAMPLES / "info.json").read_text())
    grid, samples = load_torch(SAMPLES / "grid.pt", "sample grid"), load_torch(SAMPLES / "eval.pt", "samples")
    judged, evaluation = load_torch(JUDGED, "judged samples"), json.loads(EVAL.read_text())
    samplers = json.loads(SAMPLERS.read_text())
    cond_table = json.loads(Path("reports/cond_mnist/table.json").read_text())
    completion = {name: json.loads((COMPLETION / f"{name}.json").read_text()) for name in ("metrics", "table", "figure")}
    n_train = round(history[-1]["images_per_s"] * history[-1]["seconds"])

    save_figure(loss_curve_figure(read_live_metric(LIVE, "train/loss"), read_live_metric(LIVE, "epoch/loss"),
                                  math.ceil(n_train / p["train"]["batch_size"])), FIG / "loss.png", dpi=130)
    save_figure(image_grid_figure(grid[:16], 4, f"16 samples ({info['sampler']}, EMA weights)"), FIG / "samples16.png", dpi=130)
    conf, label = judged["grid"].max(dim=1)
    captions = [f"{int(d)} ({c:.2f})" for d, c in zip(label[:16], conf[:16])]
    save_figure(image_grid_figure(grid[:16], 4, "The 16 samples: judge's label (confidence)", captions),
                FIG / "samples16_judged.png", dpi=130)
    save_figure(histogram_figure(evaluation["model"]["class_histogram"]), FIG / "histogram.png", dpi=130)
    save_figure(per_class_figure(samples, judged["model"]), FIG / "per_class.png", dpi=110)
    save_figure(sampler_figure(samplers["rows"]), FIG / "samplers.png", dpi=130)
    monitors = sorted((LIVE / "images" / "monitor").glob("epoch_*.png"))
    if monitors:
        save_figure(monitor_figure(monitors), FIG / "monitor.png", dpi=110)
    check = posterior_table(make_diffusion(p["diffusion"]), p["report"]["posterior_check_t"])

    md = f"""# DDPM on MNIST

The CLIP-conditioned CelebA part has its own page, [celeba.html](celeba.html), once `dvc repro report_celeba` has run
(it needs the CelebA files and CLIP weights).

{training_section(history, p['train']['batch_size'], n_train, info['device'])}
## 16 samples
Sampler: {info['sampler']}; {info['n_grid']} samples in {info['grid_seconds']:.1f} s on {info['device']}.

![16 samples](figures/samples16.png)

{recognizable_section(evaluation, json.loads(JUDGE.read_text())['test_accuracy'])}
{sampler_section(samplers)}
{completion_section(completion['metrics'], completion['table'], completion['figure'])}
{cond_section(cond_table, p['cond'])}
## Samples during training
{'![monitoring grids](figures/monitor.png)' if monitors else '(no monitoring grids were logged)'}

## Assignment 1: the posterior q(x_{{t-1}} | x_t, x_0)
{DERIVATION}
**Numerical check.** `Diffusion.q_posterior` (the closed form) against the posterior computed by brute force
(`ddpm.checks.brute_force_posterior`: the product of the two Gaussian densities on a fine grid, normalized by
quadrature, with no closed form used), for $x_0 = 0.6$, $x_t = -0.3$, on this run's schedule:

{table_markdown(check, {'mu_closed': '.10f', 'mu_bayes': '.10f', 'var_closed': '.3e', 'var_bayes': '.3e', 'max_abs_diff': '.1e'})}

## Settings
```yaml
{yaml.safe_dump(p, sort_keys=False).strip()}
```
"""
    write_report(md, OUT, "DDPM on MNIST")
    print(f"report: {OUT / 'index.html'} and {OUT / 'report.md'}")


if __name__ == "__main__":
    run_stage(main)
