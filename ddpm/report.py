"""The report pages: Markdown rendered from Jinja2 templates (ddpm/templates/), and its HTML twin with every formula
typeset as MathML (latex2mathml), so the page renders in a browser without network access."""
from __future__ import annotations

import html
import io
import math
from pathlib import Path
from typing import Any, Sequence

import jinja2
import pandas as pd
from latex2mathml.converter import convert as latex_to_mathml
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin
from ruamel.yaml import YAML

from .completion import best_rows
from .figures import Figures
from .figures import (clip_sweep_figure, guidance_grid_figure, histogram_figure, image_grid_figure, loss_curve_figure,
                      monitor_figure, overview_figure, per_class_figure, quality_vs_minutes_figure)
from .io import NUMBER, Shape
from .metrics import MAX_COVERAGE

TEMPLATES = Path(__file__).parent / "templates"


def fmt(value: Any, spec: str = "") -> str:
    """format(value, spec) for numbers; strings (and None) as they are."""
    return value if isinstance(value, str) else ("–" if value is None else format(value, spec))


def table_markdown(rows: Sequence[dict[str, Any]], formats: dict[str, str] | None = None, left: int = 0) -> str:
    """A list of dicts as a Markdown table (column order from the first row; the first `left` columns, e.g. names,
    aligned left, the rest right); formats: a format spec per column ("–" for None, strings as they are)."""
    formats = formats or {}
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * left + "---:|" * (len(cols) - left)]
    lines += ["| " + " | ".join(fmt(r[c], formats.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)  # Markdown out, escaped when made HTML
    env.filters.update(f=fmt, table=table_markdown)
    env.globals.update(MAX_COVERAGE=MAX_COVERAGE)
    return env


def render(template: str, **context: Any) -> str:
    """The Markdown of templates/<template> with `context`."""
    return environment().get_template(template).render(**context)


def _math(tex: str, options: dict[str, Any]) -> str:
    return latex_to_mathml(tex.strip(), display="block" if options.get("display_mode") else "inline")


def markdown_to_html(md: str, title: str) -> str:
    """Markdown (tables, code, $…$ and $$…$$ math) → a standalone HTML page; math as MathML, no script, no network."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table").use(
        dollarmath_plugin, renderer=_math, allow_space=True, allow_digits=True, double_inline=True)
    return render("page.html.j2", title=html.escape(title), body=parser.render(md))


def read_live_metric(plots_dir: Path, name: str) -> pd.DataFrame:
    """A dvclive metric history (columns: step, <metric>) as a DataFrame."""
    path = Path(plots_dir) / "metrics" / f"{name}.tsv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no loss history; run the training stage (dvc repro)")
    return pd.read_csv(path, sep="\t")


def recognizable_verdict(model: float, real: float) -> str:
    """One word answering "are they recognizable?" from the share of confident samples against real digits'."""
    ratio = model / real if real else 0.0
    return "Yes" if ratio >= 0.9 else ("Mostly" if ratio >= 0.7 else ("Partly" if ratio >= 0.4 else "No"))


# -- the MNIST report ----------------------------------------------------------------------------------------------
_ROW = {"fid_clf": NUMBER, "recognizable": NUMBER, "coverage": NUMBER}
INPUT_SHAPES: dict[str, Shape] = {  # what the report reads of each stage's output (read_json checks it)
    "evaluation": {"n": int, "n_reference": int, "memorization": dict,
                   **{row: _ROW for row in ("model", "floor_real_test", "blurred_test", "superposed_test", "noise")}},
    "judge": {k: NUMBER for k in ("accuracy", "ece", "temperature", "recognizable_real", "recognizable_noise",
                                  "recognizable_blurred")},
    "samplers": {"n": int, "device": str, "rows": [{"sampler": str, "steps": int, "eta": NUMBER, "weights": str,
                                                     "autoguidance": NUMBER, "seconds": NUMBER, **_ROW}]},
    "completion": {"route": str, "scale": NUMBER, "accuracy": NUMBER, "mse_visible": NUMBER, "mse_hidden": NUMBER,
                   "diversity": NUMBER, "seconds_per_image": NUMBER, "n_images": int, "k": int},
    "figure": {"scale": NUMBER, "route": str},
    "cfg": {"guidance": (int, float, str), "accuracy": NUMBER, "seconds": NUMBER, "n": int, **_ROW},
    "info": {"sampler": str, "n_grid": int, "grid_seconds": NUMBER, "device": str},
    "train": {"minutes": NUMBER}, "train_cfg": {"minutes": NUMBER},
}


def mnist_figures(data: dict[str, Any], live_dir: Path, monitors: list[Path], batch_size: int) -> Figures:
    """The report's own figures, from what the stages measured (`data`: the report stage's inputs), by file name."""
    n_train = _images_per_epoch(data["history"])
    grid = data["grid"][:16]
    conf, label = data["judged"]["grid"].max(dim=1)
    captions = [f"{int(d)} ({c:.2f})" for d, c in zip(label[:16], conf[:16])]
    c = data["completions"]
    out: Figures = {
        "loss.png": (loss_curve_figure(read_live_metric(live_dir, "train/loss"), read_live_metric(live_dir, "epoch/loss"),
                                       math.ceil(n_train / batch_size)), {"dpi": 130}),
        "samples16.png": (image_grid_figure(grid, 4, f"16 samples ({data['info']['sampler']}, EMA weights)"),
                          {"dpi": 130}),
        "samples16_judged.png": (image_grid_figure(grid, 4, "The 16 samples: judge's label (confidence)", captions),
                                 {"dpi": 130}),
        "histogram.png": (histogram_figure(data["evaluation"]["model"]["class_histogram"]), {"dpi": 130}),
        "per_class.png": (per_class_figure(data["samples"], data["judged"]["model"]), {"dpi": 110}),
    }
    if monitors:
        out["monitor.png"] = (monitor_figure(monitors), {"dpi": 110})
    quality = training_quality(live_dir)
    if quality is not None:
        out["quality.png"] = (quality_vs_minutes_figure({"this run (EMA weights)": quality},
                                                        data["evaluation"]["floor_real_test"]["recognizable"]),
                              {"dpi": 120})
    out["overview.png"] = (overview_figure(grid, c["visible"], c["masks"], c["completions"]),
                           {"dpi": 80, "bbox_inches": "tight"})
    return out


def mnist_context(data: dict[str, Any], p: dict[str, dict[str, Any]], posterior: list[dict[str, float]],
                  monitors: list[Path], live_dir: Path) -> dict[str, Any]:
    """What templates/report.md.j2 shows, computed from the report stage's inputs and params."""
    ev, history, completion, cfg = data["evaluation"], data["history"], data["completion"], data["cfg"]
    scaled = [r for r in cfg if r["guidance"] != "uncond"]
    return {
        "history": history, "n_train": _images_per_epoch(history), "batch_size": p["train_mnist"]["batch_size"],
        "guide_step": p["train_mnist"]["guide_step"],
        "minutes": sum(h["seconds"] for h in history) / 60, "device": data["info"]["device"], "loss_png": "figures/loss.png",
        "epochs": [{k: h[k] for k in ("epoch", "step", "loss", "seconds", "images_per_s")} for h in history],
        "info": data["info"], "evaluation": ev,
        "verdict": recognizable_verdict(ev["model"]["recognizable"], ev["floor_real_test"]["recognizable"]),
        "evaluation_rows": [{"row": name, "N": ev["n"], **{k: ev[name][k] for k in ("fid_clf", "recognizable", "coverage")},
                             "fid_clf / floor": ev[name]["fid_clf"] / ev["floor_real_test"]["fid_clf"]}
                            for name in ("model", "floor_real_test", "blurred_test", "superposed_test", "noise")],
        "samplers": data["samplers"],
        "sampler_rows": [{k: r[k] for k in ("sampler", "steps", "eta", "weights", "autoguidance", "fid_clf", "recognizable",
                                            "coverage", "seconds")} for r in data["samplers"]["rows"]],
        "figure": data["figure"], "completion": completion, "best": best_rows(completion),
        "baselines": {r["route"]: r["accuracy"] for r in completion if r["route"] in ("none", "replace", "nearest")},
        "completion_rows": [{k: r[k] for k in ("route", "scale", "accuracy", "mse_visible", "mse_hidden", "diversity",
                                               "seconds_per_image")} for r in completion],
        "cfg": cfg, "cfg_best": max(scaled, key=lambda r: r["accuracy"]),
        "cfg_rows": [{"guidance w": str(r["guidance"]), **{k: r[k] for k in ("accuracy", "fid_clf", "recognizable",
                                                                             "coverage", "seconds")}} for r in cfg],
        "p_uncond": p["train_mnist_cfg"]["p_uncond"], "n_per_prompt": p["sweep_mnist_cfg"]["n_per_prompt"],
        "monitors": monitors, "posterior": posterior, "settings": dump_yaml(p),
        "quality": training_quality(live_dir), "judge": data["judge"],
    }


def training_quality(live_dir: Path) -> pd.DataFrame | None:
    """The judge's figures logged after every epoch (minutes, recognizable, coverage, fid_ratio), or None if
    training logged none (monitor_judge_n: 0)."""
    names = ("minutes", "recognizable", "coverage", "fid_ratio")
    if not (Path(live_dir) / "metrics" / "quality" / "minutes.tsv").exists():
        return None
    frames = [read_live_metric(live_dir, f"quality/{name}")[["step", name]] for name in names]
    merged = frames[0]
    for frame in frames[1:]:
        merged = merged.merge(frame, on="step")
    return merged


def headline(data: dict[str, Any]) -> dict[str, float]:
    """The run's few figures for `dvc metrics show` and `dvc exp show`: minutes of training (both models), the
    samples' fid_clf as a multiple of real digits' (same N and reference), recognizable and coverage, the best
    completion route's judge accuracy, the guidance twin's best accuracy to the prompt, the judge's test accuracy."""
    ev = data["evaluation"]
    scaled = [r for r in data["cfg"] if r["guidance"] != "uncond"]
    return {"minutes": data["train"]["minutes"] + data["train_cfg"]["minutes"],
            "fid_ratio": ev["model"]["fid_ratio"],
            "recognizable": ev["model"]["recognizable"], "coverage": ev["model"]["coverage"],
            "completion": max(r["accuracy"] for r in best_rows(data["completion"]).values()),
            "guidance": max(r["accuracy"] for r in scaled), "judge": data["judge"]["accuracy"]}


def _images_per_epoch(history: list[dict[str, float]]) -> int:
    return round(history[-1]["images_per_s"] * history[-1]["seconds"])


def dump_yaml(p: dict[str, Any]) -> str:
    """Params as block YAML (the report's settings section)."""
    stream = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = None
    yaml.dump(p, stream)
    return stream.getvalue().strip()


# -- the CelebA report ---------------------------------------------------------------------------------------------
CELEBA_TABLE: Shape = {"guidance": (int, float, str), "clip_score": NUMBER, "diversity": NUMBER, "n": int,
                       "seconds": NUMBER, "device": str}


def celeba_report(table: list[dict[str, Any]], samples: dict[str, Any], history: list[dict[str, float]],
                  live_dir: Path, monitors: list[Path], p: dict[str, dict[str, Any]]
                  ) -> tuple[str, dict[str, Any], Figures]:
    """The CelebA page's Markdown, its headline (the best guidance scale by CLIP score) and its figures by file name
    (the page links them as celeba/<name>)."""
    sp = p["sweep_celeba"]
    n_train = _images_per_epoch(history)
    scaled = [r for r in table if r["guidance"] != "uncond"]
    by_scale = {str(r["guidance"]): samples["samples"][str(r["guidance"])] for r in scaled}
    best = max(scaled, key=lambda r: r["clip_score"])
    fig: Figures = {
        "loss.png": (loss_curve_figure(read_live_metric(live_dir, "train/loss"), read_live_metric(live_dir, "epoch/loss"),
                                       math.ceil(n_train / p["train_celeba"]["batch_size"])), {"dpi": 130}),
        "sweep.png": (clip_sweep_figure(table), {"dpi": 130}),
        "grid.png": (guidance_grid_figure(sp["prompts"], {w: s[:, 0] for w, s in by_scale.items()}), {"dpi": 120}),
        "prompted.png": (image_grid_figure(by_scale[str(best["guidance"])].flatten(0, 1), sp["n_per_prompt"],
                                           f"Prompted faces at w = {best['guidance']:g} (a row per prompt)"),
                         {"dpi": 120}),
        "unconditional.png": (image_grid_figure(samples["samples"]["uncond"].flatten(0, 1), 8, "Unconditional faces"),
                              {"dpi": 120}),
    }
    if monitors:
        fig["monitor.png"] = (monitor_figure(monitors), {"dpi": 110})
    md = render("celeba.md.j2", clip=p["clip"], p_uncond=p["train_celeba"]["p_uncond"], history=history, n_train=n_train,
                batch_size=p["train_celeba"]["batch_size"], minutes=sum(h["seconds"] for h in history) / 60,
                device=table[0]["device"], loss_png="celeba/loss.png", monitors=monitors,
                epochs=[{k: h[k] for k in ("epoch", "step", "loss", "seconds", "images_per_s")} for h in history],
                rows=[{"guidance w": str(r["guidance"]), **{k: r[k] for k in ("clip_score", "diversity", "n", "seconds")}}
                      for r in table])
    return md, {"best_guidance": best["guidance"], "best_clip_score": best["clip_score"],
                "clip_score_uncond": next(r["clip_score"] for r in table if r["guidance"] == "uncond")}, fig
