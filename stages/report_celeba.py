"""Stage report_celeba: reports/celeba.html and reports/celeba.md: training, the guidance sweep, prompted and
unconditional faces."""
import json
import math
from pathlib import Path

from ddpm import params
from ddpm.cli import run_stage
from ddpm.io import load_checkpoint, load_torch, save_figure, save_json
from ddpm.report import (clip_sweep_figure, guidance_grid_figure, image_grid_figure, loss_curve_figure, monitor_figure,
                         read_live_metric, table_markdown, training_section, write_report)

LIVE, SWEEP, SAMPLES = Path("reports/train_celeba/plots"), Path("reports/celeba/sweep"), Path("data/celeba/sweep")
CHECKPOINT, OUT, FIG = Path("data/celeba/model/checkpoint.pt"), Path("reports"), Path("reports/celeba")


def main() -> None:
    p = params.load(["celeba_train", "celeba_sweep", "clip"])
    sp = p["celeba_sweep"]
    names = [str(w) for w in sp["guidance_scales"]]
    by_name = {n: json.loads((SWEEP / f"{n}.json").read_text()) for n in names + ["uncond"]}
    rows = list(by_name.values())
    samples = {n: load_torch(SAMPLES / f"{n}.pt", "sweep samples")["samples"] for n in names + ["uncond"]}
    history = load_checkpoint(CHECKPOINT)["history"]
    n_train = round(history[-1]["images_per_s"] * history[-1]["seconds"])
    batch = p["celeba_train"]["batch_size"]

    save_figure(loss_curve_figure(read_live_metric(LIVE, "train/loss"), read_live_metric(LIVE, "epoch/loss"),
                                  math.ceil(n_train / batch)), FIG / "loss.png", dpi=130)
    save_figure(clip_sweep_figure(rows), FIG / "sweep.png", dpi=130)
    save_figure(guidance_grid_figure(sp["prompts"], {n: samples[n][:, 0] for n in names}), FIG / "grid.png", dpi=120)
    best_name = max(names, key=lambda n: by_name[n]["clip_score"])
    best = by_name[best_name]
    prompted = samples[best_name].flatten(0, 1)
    save_figure(image_grid_figure(prompted, sp["n_per_prompt"], f"Prompted faces at w = {best['guidance']:g} (a row per prompt)"),
                FIG / "prompted.png", dpi=120)
    save_figure(image_grid_figure(samples["uncond"].flatten(0, 1), 8, "Unconditional faces"), FIG / "unconditional.png", dpi=120)
    monitors = sorted((LIVE / "images" / "monitor").glob("epoch_*.png"))
    if monitors:
        save_figure(monitor_figure(monitors), FIG / "monitor.png", dpi=110)
    save_json([{k: r[k] for k in ("guidance", "clip_score", "diversity")} for r in rows[:-1]], FIG / "clip_vs_scale.json")
    save_json({"best_guidance": best["guidance"], "best_clip_score": best["clip_score"],
               "clip_score_uncond": rows[-1]["clip_score"]}, FIG / "metrics.json")
    table = table_markdown([{"guidance w": str(r["guidance"]), **{k: r[k] for k in ("clip_score", "diversity", "n", "seconds")}}
                            for r in rows], {"clip_score": ".4f", "diversity": ".4f", "seconds": ".1f"})
    md = f"""# CLIP-conditioned faces (CelebA) with classifier-free guidance

CLIP: `{p['clip']['model']}` with weights `{p['clip']['pretrained']}`. Training context: the CLIP image embedding of each
face, dropped with probability {p['celeba_train']['p_uncond']} (`get_context_mask`); sampling context: the CLIP text
embedding of each prompt, $\\tilde\\varepsilon = (1+w)\\,\\varepsilon_\\theta(x_t,c) - w\\,\\varepsilon_\\theta(x_t,\\varnothing)$.

{training_section(history, batch, n_train, rows[0]['device'], loss_png='celeba/loss.png')}
## Guidance sweep
CLIP score: cosine between the CLIP embedding of each sample and its prompt's; diversity: mean pairwise
1 − cos among the samples of one prompt. `uncond` samples with the context dropped.

{table}

![sweep](celeba/sweep.png)

![prompt × scale](celeba/grid.png)

![prompted](celeba/prompted.png)

![unconditional](celeba/unconditional.png)

## During training
{'![monitoring](celeba/monitor.png)' if monitors else '(no monitoring grids)'}
"""
    write_report(md, OUT, "CLIP-conditioned faces", md_name="celeba.md", html_name="celeba.html")
    print(f"report: {OUT / 'celeba.html'}")


if __name__ == "__main__":
    run_stage(main)
