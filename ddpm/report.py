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

from .io import image_grid_pil, save_figure, save_text  # noqa: E402

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


def write_report(md: str, out_dir: Path, title: str) -> None:
    """reports/report.md and reports/index.html (the same content)."""
    save_text(md, out_dir / "report.md")
    save_text(markdown_to_html(md, title), out_dir / "index.html")


def save_grid_png(images: torch.Tensor, path: Path, nrow: int) -> None:
    """A plain PNG image grid (no axes), scaled up for reading."""
    img = image_grid_pil(images, nrow=nrow)
    from .io import atomic_path

    with atomic_path(path) as tmp:
        img.resize((img.width * 3, img.height * 3), Image.NEAREST).save(tmp, format="png")


__all__ = ["DERIVATION", "image_grid_figure", "loss_curve_figure", "markdown_to_html", "monitor_figure",
           "read_live_metric", "save_figure", "save_grid_png", "table_markdown", "write_report"]
