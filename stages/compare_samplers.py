"""Stage compare_samplers: the same model sampled with each configured sampler × steps × η (and the raw weights
beside their EMA, and autoguidance by its early weights), every row scored by the judge, with its wall time."""
import time
from pathlib import Path

from ddpm import distributed, params
from ddpm.diffusion import Diffusion
from ddpm.evaluation import score_samples
from ddpm.figures import sampler_figure, save_figure
from ddpm.io import save_json
from ddpm.judge import load_judge
from ddpm.pretrained import load_unet
from ddpm.stage import run_stage

MODEL, JUDGE = Path("data/mnist/model"), Path("data/mnist/judge/judge.pt")
OUT = Path("reports/compare_samplers")


def main() -> None:
    p = params.load_stage("compare_samplers")
    cp = p["compare_samplers"]
    world, device = distributed.init(cp["device"])
    diffusion = Diffusion.from_params(p["diffusion"])
    judge, reference = load_judge(JUDGE, device)
    models = {(w, ag): load_unet(MODEL, p["diffusion"], device, cp["amp"], which=w, autoguidance=ag,
                                 batch=(cp["batch_size"], "compare_samplers.batch_size"))
              for w, ag in {(row["weights"], row["autoguidance"]) for row in cp["rows"]}}
    rows = []
    for row in cp["rows"]:
        t0 = time.time()
        x = distributed.sample_sharded(diffusion, models[row["weights"], row["autoguidance"]], cp["n"], (1, 28, 28), cp["batch_size"],
                                       cp["seed"], world, device, sampler=row["sampler"], steps=row["steps"],
                                       eta=row["eta"])
        seconds = time.time() - t0
        if world.is_main:  # rank 0 judges and writes
            rows.append({**row, **score_samples(judge, reference, x), "seconds": seconds,
                         "ms_per_image": 1000 * seconds / cp["n"]})
            print(rows[-1])
    distributed.shutdown()
    if world.is_main:
        save_json({"n": cp["n"], "device": str(device), "processes": world.size, "rows": rows}, OUT / "samplers.json")
        save_figure(sampler_figure(rows), OUT / "samplers.png", dpi=130)


if __name__ == "__main__":
    run_stage(main)
