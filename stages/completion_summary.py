"""Stage completion_summary: the sweep's table, accuracy-against-scale plot, and the chosen default scale."""
import json
from pathlib import Path

from ddpm import params
from ddpm.cli import run_stage
from ddpm.io import save_figure, save_json
from ddpm.report import completion_sweep_figure

SWEEP, OUT = Path("reports/completion/sweep"), Path("reports/completion")


def sweep_file(route: str, scale: float) -> Path:
    return SWEEP / f"{route}-{scale}.json"


def main() -> None:
    cp = params.load(["completion"])["completion"]
    rows = []
    for route, scales in (("none", [0.0]), ("replace", [0.0]), ("xt", cp["scales"]), ("mean", cp["scales"])):
        for scale in scales:
            path = sweep_file(route, scale)
            if not path.exists():
                raise FileNotFoundError(f"{path}: missing sweep result; run dvc repro completion_sweep")
            rows.append(json.loads(path.read_text()))
    best = {route: max((r for r in rows if r["route"] == route), key=lambda r: (r["accuracy"], -r["mse_visible"]))
            for route in ("xt", "mean")}
    for route in ("xt", "mean"):
        save_json([{"scale": r["scale"], "accuracy": r["accuracy"]} for r in rows if r["route"] == route],
                  OUT / f"accuracy_vs_scale_{route}.json")
    save_json(rows, OUT / "table.json")
    baseline = {r["route"]: r["accuracy"] for r in rows if r["route"] in ("none", "replace")}
    save_json({"best_scale_xt": best["xt"]["scale"], "best_accuracy_xt": best["xt"]["accuracy"],
               "best_scale_mean": best["mean"]["scale"], "best_accuracy_mean": best["mean"]["accuracy"],
               "accuracy_no_guidance": baseline["none"], "accuracy_replacement": baseline["replace"],
               "seconds_per_image_xt": best["xt"]["seconds_per_image"],
               "seconds_per_image_mean": best["mean"]["seconds_per_image"]}, OUT / "metrics.json")
    save_figure(completion_sweep_figure(rows), OUT / "accuracy_vs_scale.png", dpi=130)
    print(f"best scale: xt {best['xt']['scale']} ({best['xt']['accuracy']:.3f}), "
          f"mean {best['mean']['scale']} ({best['mean']['accuracy']:.3f}); no guidance {baseline['none']:.3f}, "
          f"replacement {baseline['replace']:.3f}")


if __name__ == "__main__":
    run_stage(main)
