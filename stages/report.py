"""Stage report: reports/index.html and reports/report.md, from what the other stages measured."""
from pathlib import Path

from ddpm import params
from ddpm.checkpoint import load_checkpoint
from ddpm.checks import posterior_table
from ddpm.diffusion import Diffusion
from ddpm.figures import save_figures
from ddpm.io import load_torch, read_json, save_json, save_text
from ddpm.report import INPUT_SHAPES, headline, markdown_to_html, mnist_context, mnist_figures, render
from ddpm.stage import run_stage

INPUTS = {  # what the report reads: (path, what it is)
    "evaluation": ("reports/evaluate/detail.json", "evaluation"), "judge": ("reports/judge/metrics.json", "judge metrics"),
    "samplers": ("reports/compare_samplers/samplers.json", "sampler comparison"),
    "completion": ("reports/completion_sweep/table.json", "completion sweep"),
    "figure": ("reports/complete/figure.json", "completion figure"),
    "cfg": ("reports/sweep_mnist_cfg/table.json", "guidance sweep"), "info": ("data/mnist/samples/info.json", "sample info"),
    "train": ("reports/train_mnist/metrics.json", "training summary"),
    "train_cfg": ("reports/train_mnist_cfg/metrics.json", "guidance twin's training summary"),
}
LIVE, MONITORS = Path("reports/train_mnist/plots"), Path("reports/train_mnist/plots/images/monitor")
MODEL, SAMPLES, JUDGED = Path("data/mnist/model/checkpoint.pt"), Path("data/mnist/samples"), Path("data/mnist/eval/judged.pt")
COMPLETIONS = Path("data/mnist/completion/figure.pt")
MD, HTML, FIGURES = Path("reports/report.md"), Path("reports/index.html"), Path("reports/figures")
METRICS = Path("reports/metrics.json")


def main() -> None:
    p = params.load_stage("report")
    data = {name: read_json(path, what, INPUT_SHAPES[name]) for name, (path, what) in INPUTS.items()}
    data["history"] = load_checkpoint(MODEL)["history"]
    data["grid"] = load_torch(SAMPLES / "grid.pt", "sample grid")
    data["samples"] = load_torch(SAMPLES / "eval.pt", "samples")
    data["judged"] = load_torch(JUDGED, "judged samples")
    data["completions"] = load_torch(COMPLETIONS, "completion figure")
    monitors = sorted(MONITORS.glob("epoch_*.png"))
    save_figures(mnist_figures(data, LIVE, monitors, p["train_mnist"]["batch_size"]), FIGURES)
    posterior = posterior_table(Diffusion.from_params(p["diffusion"]), p["report"]["posterior_check_t"])
    md = render("report.md.j2", **mnist_context(data, p, posterior, monitors, LIVE))
    save_text(md, MD)
    save_text(markdown_to_html(md, "DDPM on MNIST"), HTML)
    save_json(headline(data), METRICS)
    print(f"report: {HTML} and {MD}")


if __name__ == "__main__":
    run_stage(main)
