"""Figures (matplotlib/seaborn) and the report page: Markdown, and the same content as HTML."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from .io import save_figure, save_text  # noqa: E402,F401  (the stages take save_figure from here too)
from .metrics import MAX_COVERAGE  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


def read_live_metric(plots_dir: Path, name: str) -> pd.DataFrame:
    """A dvclive metric history (columns: step, <metric>) as a DataFrame."""
    path = Path(plots_dir) / "metrics" / f"{name}.tsv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no loss history; run the training stage (dvc repro train_mnist)")
    return pd.read_csv(path, sep="\t")


def loss_curve_figure(per_step: pd.DataFrame, per_epoch: pd.DataFrame, steps_per_epoch: int) -> plt.Figure:
    """The training loss: every logged window and the mean of each epoch."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(per_step["step"], per_step["loss"], lw=0.8, alpha=0.6, label="mean over each logging window")
    ax.plot(per_epoch["step"], per_epoch["loss"], "o-", lw=2, label="mean over the epoch")
    ax.set(xlabel=f"optimizer step ({steps_per_epoch} per epoch)", ylabel="L_simple = ‖ε − ε_θ‖²", yscale="log",
           title="Training loss")
    ax.legend()
    fig.tight_layout()
    return fig


def image_grid_figure(images: torch.Tensor, nrow: int, title: str, labels: Sequence[str] | None = None) -> plt.Figure:
    """Images in [−1, 1] on a grid of axes, with optional captions."""
    n = len(images)
    rows = (n + nrow - 1) // nrow
    fig, axes = plt.subplots(rows, nrow, figsize=(1.3 * nrow, 1.4 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(((images[i].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).squeeze(-1).numpy(),
                      cmap="gray", vmin=0, vmax=1)
            if labels:
                ax.set_title(labels[i], fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def monitor_figure(paths: Sequence[Path], max_rows: int = 10) -> plt.Figure:
    """The monitoring grids (the same noise every epoch) stacked, one row per epoch."""
    if len(paths) > max_rows:  # keep the first and the last, evenly in between
        keep = sorted({round(i * (len(paths) - 1) / (max_rows - 1)) for i in range(max_rows)})
        paths = [paths[i] for i in keep]
    fig, axes = plt.subplots(len(paths), 1, figsize=(8, 1.25 * len(paths) + 0.3), squeeze=False)
    for ax, path in zip(axes[:, 0], paths):
        ax.imshow(Image.open(path), cmap="gray")
        epoch = int(re.findall(r"\d+", path.stem)[-1])
        ax.set_ylabel(f"epoch {epoch}", rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Monitoring samples after each epoch (same noise, EMA weights, DDIM)")
    fig.tight_layout()
    return fig


DERIVATION = r"""
**Claim.** With $q(x_t\mid x_{t-1})=\mathcal N(\sqrt{\alpha_t}\,x_{t-1},\ \beta_t I)$ and
$q(x_{t-1}\mid x_0)=\mathcal N(\sqrt{\bar\alpha_{t-1}}\,x_0,\ (1-\bar\alpha_{t-1}) I)$
(the closed-form marginal of the forward chain, from hw1),

$$q(x_{t-1}\mid x_t,x_0)=\mathcal N\big(x_{t-1};\ \tilde\mu_t(x_t,x_0),\ \tilde\beta_t I\big),\qquad
\tilde\mu_t=\frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0+\frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,\qquad
\tilde\beta_t=\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .$$

**Proof.** By Bayes' rule, and because the forward process is Markov
($q(x_t\mid x_{t-1},x_0)=q(x_t\mid x_{t-1})$),

$$q(x_{t-1}\mid x_t,x_0)=\frac{q(x_t\mid x_{t-1})\,q(x_{t-1}\mid x_0)}{q(x_t\mid x_0)}\ \propto\ q(x_t\mid x_{t-1})\,q(x_{t-1}\mid x_0),$$

where the denominator does not depend on $x_{t-1}$. Both factors are Gaussian in $x_{t-1}$, so the
log-posterior is, up to terms free of $x_{t-1}$ (every coordinate is independent, so it suffices to work per coordinate),

$$-\frac12\left[\frac{(x_t-\sqrt{\alpha_t}x_{t-1})^2}{\beta_t}+\frac{(x_{t-1}-\sqrt{\bar\alpha_{t-1}}x_0)^2}{1-\bar\alpha_{t-1}}\right]
=-\frac12\left[\Big(\frac{\alpha_t}{\beta_t}+\frac{1}{1-\bar\alpha_{t-1}}\Big)x_{t-1}^2
-2\Big(\frac{\sqrt{\alpha_t}}{\beta_t}x_t+\frac{\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_{t-1}}x_0\Big)x_{t-1}\right]+C .$$

A quadratic $-\frac12(a x^2-2bx)$ in the exponent is the Gaussian $\mathcal N(b/a,\ 1/a)$ (complete the square).
The precision is, using $\alpha_t(1-\bar\alpha_{t-1})+\beta_t=\alpha_t-\bar\alpha_t+1-\alpha_t=1-\bar\alpha_t$,

$$a=\frac{\alpha_t(1-\bar\alpha_{t-1})+\beta_t}{\beta_t(1-\bar\alpha_{t-1})}=\frac{1-\bar\alpha_t}{\beta_t(1-\bar\alpha_{t-1})}
\quad\Longrightarrow\quad \tilde\beta_t=\frac1a=\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t ,$$

and the mean is

$$\tilde\mu_t=\frac ba=\tilde\beta_t\Big(\frac{\sqrt{\alpha_t}}{\beta_t}x_t+\frac{\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_{t-1}}x_0\Big)
=\frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t+\frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 .\qquad\blacksquare$$

**Reverse-q with a noise estimate.** Substituting $x_0=\frac{1}{\sqrt{\bar\alpha_t}}\big(x_t-\sqrt{1-\bar\alpha_t}\,\varepsilon\big)$ gives
$\tilde\mu_t=\frac{1}{\sqrt{\alpha_t}}\big(x_t-\frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\varepsilon\big)$. The sampler plugs in
$\hat x_0=\mathrm{clip}_{[-1,1]}\big(\mathbb E[x_0\mid x_t]\big)$ computed from $\varepsilon_\theta(x_t,t)$ (`Diffusion.q_reverse`),
which is the same mean before clipping and keeps $\hat x_0$ in the data range after it.
With the code's 0-based $t$ and $\bar\alpha_{-1}:=1$, $\tilde\beta_0=0$: the last step returns $\hat x_0$ itself.
"""


def markdown_to_html(md: str, title: str) -> str:
    """Markdown → a standalone HTML page; TeX is shielded from Markdown and typeset by MathJax."""
    import markdown

    math: list[str] = []

    def shield(m: re.Match) -> str:
        math.append(m.group(0))
        return f"@@MATH{len(math) - 1}@@"

    body = re.sub(r"\$\$.+?\$\$|\$[^$\n]+?\$", shield, md, flags=re.S)
    body = markdown.markdown(body, extensions=["tables", "fenced_code"])
    body = re.sub(r"@@MATH(\d+)@@", lambda m: math[int(m.group(1))].replace("&", "&amp;").replace("<", "&lt;"), body)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script>window.MathJax = {{tex: {{inlineMath: [['$', '$']]}}}};</script>
<script async src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #222; }}
img {{ max-width: 100%; }} table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; }} th {{ background: #f3f3f3; }}
code, pre {{ background: #f6f6f6; }} pre {{ padding: .6rem; overflow-x: auto; }}
</style></head><body>
{body}
</body></html>
"""


def table_markdown(rows: Sequence[dict[str, Any]], formats: dict[str, str] | None = None) -> str:
    """A list of dicts as a Markdown table (column order from the first row)."""
    formats = formats or {}
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---:|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(format(r[c], formats.get(c, "")) if not isinstance(r[c], str) else r[c]
                                      for c in cols) + " |")
    return "\n".join(lines)


def write_report(md: str, out_dir: Path, title: str, md_name: str = "report.md", html_name: str = "index.html") -> None:
    """The Markdown report and its HTML twin (the same content)."""
    save_text(md, out_dir / md_name)
    save_text(markdown_to_html(md, title), out_dir / html_name)




def per_class_figure(images: torch.Tensor, probs: torch.Tensor, per_class: int = 8) -> plt.Figure:
    """For each digit, the samples the judge is most confident about (empty cells: too few of that class)."""
    fig, axes = plt.subplots(10, per_class, figsize=(per_class * 0.9, 10 * 0.95))
    conf, pred = probs.max(dim=1)
    for digit in range(10):
        idx = (pred == digit).nonzero().flatten()
        idx = idx[conf[idx].argsort(descending=True)][:per_class]
        for j, ax in enumerate(axes[digit]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(idx):
                ax.imshow(((images[idx[j], 0] + 1) / 2).numpy(), cmap="gray", vmin=0, vmax=1)
            if j == 0:
                ax.set_ylabel(str(digit), rotation=0, ha="right", va="center", fontsize=12)
    fig.suptitle("Samples grouped by the judge's label (most confident first)")
    fig.tight_layout()
    return fig


def histogram_figure(counts: Sequence[int]) -> plt.Figure:
    """The predicted-class histogram of the samples, against the uniform share."""
    fig, ax = plt.subplots(figsize=(6, 2.8))
    sns.barplot(x=list(range(10)), y=list(counts), ax=ax, color="#4c72b0")
    ax.axhline(sum(counts) / 10, color="k", ls="--", lw=1, label="uniform")
    ax.set(xlabel="digit predicted by the judge", ylabel="samples", title="Class histogram of the samples")
    ax.legend()
    fig.tight_layout()
    return fig


def sampler_figure(rows: Sequence[dict[str, Any]]) -> plt.Figure:
    """fid_clf and wall time against the number of denoising steps (EMA weights)."""
    df = pd.DataFrame([r for r in rows if r["weights"] == "ema"]).sort_values("steps")
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot(df["steps"], df["fid_clf"], "o-", label="fid_clf (lower is better)")
    ax.set(xscale="log", xlabel="denoising steps (DDIM; 1000 = ancestral)", ylabel="fid_clf")
    ax2 = ax.twinx()
    ax2.plot(df["steps"], df["seconds"], "s--", color="#dd8452", label="wall time (s)")
    ax2.set_ylabel("seconds")
    ax2.grid(False)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper center")
    ax.set_title("Sample quality against sampler steps")
    fig.tight_layout()
    return fig


# -- sections of the report (Markdown) ----------------------------------------------------------
def training_section(history: Sequence[dict[str, float]], batch_size: int, n_train: int, device: str,
                     loss_png: str = "figures/loss.png") -> str:
    last = history[-1]
    minutes = sum(h["seconds"] for h in history) / 60
    table = table_markdown([{k: h[k] for k in ("epoch", "step", "loss", "seconds", "images_per_s")} for h in history],
                           {"loss": ".4f", "seconds": ".0f", "images_per_s": ".0f"})
    return f"""## Training
{len(history)} epochs of {n_train} images, batch {batch_size}: final epoch loss **{last['loss']:.4f}**,
{minutes:.1f} minutes of training at {last['images_per_s']:.0f} images/s on the last epoch ({device}).

![loss curve]({loss_png})

{table}
"""


def recognizable_answer(m: dict[str, Any]) -> str:
    """One sentence that answers "are they recognizable?" from the measured shares."""
    model, real = m["model"]["recognizable"], m["floor_real_test"]["recognizable"]
    ratio = model / real if real else 0.0
    verdict = "Yes" if ratio >= 0.9 else ("Mostly" if ratio >= 0.7 else ("Partly" if ratio >= 0.4 else "No"))
    return (f"**{verdict}.** The judge labels {100 * model:.1f} % of the {m['n']} samples with confidence ≥ 0.9, "
            f"against {100 * real:.1f} % of real test digits ({100 * ratio:.0f} % of the real rate); "
            f"coverage is {m['model']['coverage']:.3f} nats of the {MAX_COVERAGE:.3f} that ten equally frequent digits give.")


def recognizable_section(m: dict[str, Any], judge_accuracy: float) -> str:
    rows = [{"row": name, "N": m["n"],
             **{k: m[name][k] for k in ("fid_clf", "recognizable", "coverage")}}
            for name in ("model", "floor_real_test", "blurred_test", "noise")]
    mem = m["memorization"]
    return f"""## Are they recognizable?
{recognizable_answer(m)}

The judge is a small CNN trained in the pipeline (test accuracy **{100 * judge_accuracy:.2f} %**). Its 64-d
penultimate features replace Inception's: `fid_clf` is the Fréchet distance in that space to a reference of
{m['n_reference']} MNIST test images (not comparable with Inception FID; every row uses the same N and reference). `recognizable` is the share of images whose top
class probability is ≥ 0.9; `coverage` the entropy of the predicted-class histogram (log 10 = {MAX_COVERAGE:.3f} is uniform).
Reference rows: N held-out real test digits (the other half of the test set: the floor), the same digits blurred
(σ given in the settings), and uniform noise (the scale).

{table_markdown(rows, {'fid_clf': '.2f', 'recognizable': '.3f', 'coverage': '.3f'})}

**Memorization.** Median pixel distance from a sample to its nearest training image: {mem['nn_train_dist_samples']:.2f};
from a held-out test image to its nearest training image: {mem['nn_train_dist_test']:.2f} (ratio {mem['nn_ratio']:.2f};
a ratio well below 1 would mean the model copies training digits). Share of samples closer to the training set
than 99 % of test images: {100 * mem['share_closer_than_test_p1']:.1f} %.

![16 samples with the judge's labels](figures/samples16_judged.png)

![class histogram](figures/histogram.png)

![samples per class](figures/per_class.png)
"""


def sampler_section(result: dict[str, Any]) -> str:
    rows = [{k: r[k] for k in ("sampler", "steps", "weights", "fid_clf", "recognizable", "coverage", "seconds")}
            for r in result["rows"]]
    return f"""## Samplers: quality against steps
The same model with the ancestral sampler (all T steps) and DDIM (η = 0) at fewer steps; N = {result['n']} samples each,
wall time on {result['device']}. `raw` is the model's own weights instead of their EMA.

{table_markdown(rows, {'fid_clf': '.2f', 'recognizable': '.3f', 'coverage': '.3f', 'seconds': '.1f'})}

![quality against steps](figures/samplers.png)
"""


def completion_figure(originals: torch.Tensor, visible: torch.Tensor, masks: torch.Tensor, completions: torch.Tensor,
                      labels: Sequence[int], subtitle: str) -> plt.Figure:
    """One row per test image: the original, its visible half (hidden half shaded), then the k completions."""
    n, k = completions.shape[:2]
    fig, axes = plt.subplots(n, k + 2, figsize=(1.25 * (k + 2), 1.3 * n + 0.6), squeeze=False)
    for i in range(n):
        shown = ((visible[i, 0] + 1) / 2).numpy()
        cells = [((originals[i, 0] + 1) / 2).numpy(), shown] + [((c[0] + 1) / 2).numpy() for c in completions[i]]
        for j, (ax, img) in enumerate(zip(axes[i], cells)):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            if j == 1:  # shade the hidden half so it reads as "unknown", not as black ink
                ax.imshow((1 - masks[i, 0]).numpy(), cmap="Reds", alpha=0.35 * (1 - masks[i, 0]).numpy(), vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        hidden = "bottom" if masks[i, 0, -1, 0] == 0 else "top"
        axes[i, 0].set_ylabel(f"digit {labels[i]}\n{hidden} hidden", fontsize=8)
    for j, title in enumerate(["original", "visible half"] + [f"completion {c + 1}" for c in range(k)]):
        axes[0, j].set_title(title, fontsize=8)
    fig.suptitle(f"Image completion ({subtitle})")
    fig.tight_layout()
    return fig


def completion_sweep_figure(rows: Sequence[dict[str, Any]]) -> plt.Figure:
    """Judge accuracy of the completions against the guidance scale, for both gradient routes and the baselines."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for route, label in (("xt", "∇ w.r.t. x_t (through the UNet)"), ("mean", "∇ w.r.t. the mean of x_(t-1)")):
        pts = sorted((r["scale"], r["accuracy"]) for r in rows if r["route"] == route)
        ax.plot([s for s, _ in pts], [a for _, a in pts], "o-", label=label)
    styles = {"none": ("k", "no guidance (scale 0)"), "replace": ("#c44e52", "replacement baseline")}
    for r in rows:
        if r["route"] in styles:
            color, label = styles[r["route"]]
            ax.axhline(r["accuracy"], color=color, ls="--", lw=1, label=label)
    ax.set(xscale="log", xlabel="guidance scale s", ylabel="judge accuracy on completions", ylim=(0, 1.02),
           title="Completion accuracy against the guidance scale")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def completion_section(summary: dict[str, Any], table: Sequence[dict[str, Any]], figure: dict[str, Any]) -> str:
    rows = [{k: r[k] for k in ("route", "scale", "accuracy", "mse_visible", "mse_hidden", "diversity", "seconds_per_image")}
            for r in table]
    n, k = table[0]["n_images"], table[0]["k"]
    return f"""## Image completion (assignment 3)
`Diffusion.complete_image(model, y, ymask, scale, wrt)` samples like `sample`, but after each reverse step it adds
$-s\\,\\nabla\\sum_{{\\text{{pixels}}}}\\big(y_m\\cdot(\\hat x_0-y)\\big)^2$, the gradient taken either w.r.t. $x_t$ through the UNet
(`wrt="xt"`) or w.r.t. the mean of $x_{{t-1}}$ with $\\hat\\varepsilon$ held fixed (`wrt="mean"`).
The figure uses scale {figure['scale']} and the gradient w.r.t. `{figure['wrt']}`; rows 1–3 hide the bottom half, rows 4–6 the top half.

![completion](completion/completion.png)

**Measured quality** on {n // 2} test digits × both halves ({n} tasks), {k} completions each: the judge's accuracy against
the true label, the MSE on the given half (consistency) and on the hidden half (against the original), the RMS
difference between completions of the same task on the hidden half (diversity), and the time per completed image.

{table_markdown(rows, {'scale': 'g', 'accuracy': '.3f', 'mse_visible': '.4f', 'mse_hidden': '.4f', 'diversity': '.3f', 'seconds_per_image': '.3f'})}

![accuracy against scale](completion/accuracy_vs_scale.png)

Best scale: {summary['best_scale_xt']} for the x_t route (accuracy {summary['best_accuracy_xt']:.3f}),
{summary['best_scale_mean']} for the mean route ({summary['best_accuracy_mean']:.3f}); without guidance
{summary['accuracy_no_guidance']:.3f}, with replacement {summary['accuracy_replacement']:.3f}.
Time per image at the best scale: {summary['seconds_per_image_xt']:.3f} s (x_t) and {summary['seconds_per_image_mean']:.3f} s (mean).
"""


def tradeoff_figure(rows: Sequence[dict[str, Any]], uncond: dict[str, Any]) -> plt.Figure:
    """Classifier-free guidance's trade-off: accuracy to the requested digit against fid_clf, one point per w."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot([r["fid_clf"] for r in rows], [r["accuracy"] for r in rows], "o-")
    for r in rows:
        ax.annotate(f"w={r['guidance']:g}", (r["fid_clf"], r["accuracy"]), textcoords="offset points", xytext=(5, -10), fontsize=8)
    ax.axvline(uncond["fid_clf"], color="k", ls="--", lw=1, label=f"unconditional (fid_clf {uncond['fid_clf']:.2f})")
    ax.set(xlabel="fid_clf (lower: closer to real digits)", ylabel="accuracy to the requested digit",
           title="Guidance trade-off (MNIST twin)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def guidance_grid_figure(prompts: Sequence[str], samples_by_scale: dict[str, torch.Tensor]) -> plt.Figure:
    """Rows: prompts; columns: guidance scales; one sample per cell (the same noise across a row)."""
    scales = list(samples_by_scale)
    fig, axes = plt.subplots(len(prompts), len(scales), figsize=(1.2 * len(scales) + 1.5, 1.1 * len(prompts) + 0.6),
                             squeeze=False)
    for j, w in enumerate(scales):
        for i, prompt in enumerate(prompts):
            ax = axes[i, j]
            img = samples_by_scale[w][i].float()
            ax.imshow(((img.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"w = {w}", fontsize=9)
            if j == 0:
                ax.set_ylabel(prompt, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Samples per prompt and guidance scale")
    fig.tight_layout()
    return fig


def cond_section(table: Sequence[dict[str, Any]], cp: dict[str, Any]) -> str:
    rows = [{"guidance w": str(r["guidance"]), **{k: r[k] for k in ("accuracy", "fid_clf", "recognizable", "coverage", "seconds")}}
            for r in table]
    scaled = [r for r in table if r["guidance"] != "uncond"]
    best = max(scaled, key=lambda r: r["accuracy"])
    return f"""## Classifier-free guidance: the MNIST twin
The same UNet with a context vector: the digit's one-hot label, projected into the time embedding (the context MLP
is the learned label embedding). In training the context is multiplied by `get_context_mask`, which drops it with
probability {cp['p_uncond']}; at sampling a prompt such as "a handwritten 7" names the digit and
$\\tilde\\varepsilon = (1+w)\\,\\varepsilon_\\theta(x_t, c) - w\\,\\varepsilon_\\theta(x_t, \\varnothing)$ is computed in one batched
forward pass (w = 0 is the plain conditional model; `uncond` is the dropped context). {table[0]['n']} samples per row
({cp['n_per_prompt']} per prompt), scored by the judge: accuracy to the requested digit, `fid_clf` to the test set, coverage.

{table_markdown(rows, {'accuracy': '.3f', 'fid_clf': '.2f', 'recognizable': '.3f', 'coverage': '.3f', 'seconds': '.1f'})}

The highest accuracy is at w = {best['guidance']:g} ({best['accuracy']:.3f}); compare `fid_clf` across rows for what guidance
costs in diversity and realism.

![trade-off](cond_mnist/tradeoff.png)

![prompt × scale](cond_mnist/grid.png)
"""


def clip_sweep_figure(rows: Sequence[dict[str, Any]]) -> plt.Figure:
    """CLIP score (prompt adherence) and diversity against the guidance scale."""
    scaled = sorted((r for r in rows if r["guidance"] != "uncond"), key=lambda r: r["guidance"])
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot([r["guidance"] for r in scaled], [r["clip_score"] for r in scaled], "o-", label="CLIP score")
    ax.set(xlabel="guidance w", ylabel="CLIP score (cosine)")
    ax2 = ax.twinx()
    ax2.plot([r["guidance"] for r in scaled], [r["diversity"] for r in scaled], "s--", color="#dd8452", label="diversity")
    ax2.set_ylabel("diversity (1 − cos)")
    ax2.grid(False)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="lower right", fontsize=8)
    ax.set_title("Prompted faces: adherence and diversity against guidance")
    fig.tight_layout()
    return fig
