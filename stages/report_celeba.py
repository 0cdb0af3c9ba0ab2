"""Stage report_celeba: celeba/reports/celeba.html and celeba/reports/celeba.md: training, the guidance sweep, prompted and
unconditional faces."""
from pathlib import Path

from ddpm import params
from ddpm.checkpoint import load_checkpoint
from ddpm.figures import save_figures
from ddpm.io import load_torch, read_json, save_json, save_text
from ddpm.report import CELEBA_TABLE, celeba_report, markdown_to_html
from ddpm.stage import run_stage

TABLE, SAMPLES = Path("reports/sweep_celeba/table.json"), Path("data/sweep/samples.pt")
CHECKPOINT, LIVE = Path("data/model/checkpoint.pt"), Path("reports/train_celeba/plots")
MD, HTML, FIGURES = Path("reports/celeba.md"), Path("reports/celeba.html"), Path("reports/figures")


def main() -> None:
    p = params.load_stage("report_celeba")
    monitors = sorted((LIVE / "images" / "monitor").glob("epoch_*.png"))
    md, headline, figures = celeba_report(read_json(TABLE, "guidance sweep table", CELEBA_TABLE),
                                          load_torch(SAMPLES, "sweep samples"), load_checkpoint(CHECKPOINT)["history"],
                                          LIVE, monitors, p)
    save_figures(figures, FIGURES)
    save_text(md, MD)
    save_text(markdown_to_html(md, "CLIP-conditioned faces"), HTML)
    save_json(headline, FIGURES / "metrics.json")
    print(f"report: {HTML}")


if __name__ == "__main__":
    run_stage(main)
