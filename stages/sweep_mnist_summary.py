"""Stage sweep_mnist_summary: the twin's guidance sweep as a table, a trade-off plot and a prompt × scale grid."""
import json
from pathlib import Path

from ddpm import params
from ddpm.cli import run_stage
from ddpm.io import load_torch, save_figure, save_json
from ddpm.report import guidance_grid_figure, tradeoff_figure

SWEEP, SAMPLES, OUT = Path("reports/cond_mnist/sweep"), Path("data/mnist/cond_sweep"), Path("reports/cond_mnist")


def main() -> None:
    cp = params.load(["cond"])["cond"]
    names = [str(w) for w in cp["guidance_scales"]] + ["uncond"]
    rows = []
    for name in names:
        path = SWEEP / f"{name}.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing sweep result; run dvc repro sweep_mnist")
        rows.append(json.loads(path.read_text()))
    scaled = [r for r in rows if r["guidance"] != "uncond"]
    save_json(rows, OUT / "table.json")
    save_json([{"guidance": r["guidance"], "accuracy": r["accuracy"], "fid_clf": r["fid_clf"]} for r in scaled],
              OUT / "tradeoff.json")
    best = max(scaled, key=lambda r: r["accuracy"])
    uncond = rows[-1]
    plain = min(scaled, key=lambda r: r["guidance"])  # the smallest w (w = 0: the plain conditional model)
    save_json({"best_guidance": best["guidance"], "best_accuracy": best["accuracy"],
               "smallest_guidance": plain["guidance"], "accuracy_smallest_guidance": plain["accuracy"],
               "fid_clf_smallest_guidance": plain["fid_clf"],
               "fid_clf_uncond": uncond["fid_clf"], "coverage_uncond": uncond["coverage"]}, OUT / "metrics.json")
    save_figure(tradeoff_figure(scaled, uncond), OUT / "tradeoff.png", dpi=130)
    grids = {w: load_torch(SAMPLES / f"{w}.pt", "sweep samples") for w in names[:-1]}
    first = next(iter(grids.values()))
    save_figure(guidance_grid_figure(first["prompts"], {w: g["samples"][:, 0] for w, g in grids.items()}),
                OUT / "grid.png", dpi=120)
    print(f"best guidance {best['guidance']}: accuracy {best['accuracy']:.3f}; w={plain['guidance']} {plain['accuracy']:.3f}")


if __name__ == "__main__":
    run_stage(main)
