"""Stage completion_sweep: complete_image on held-out half-hidden test digits, gradient routes × scales and three
baselines (none, replacement, the nearest training digits): judge accuracy, MSE per half, diversity, time."""
import time
from pathlib import Path

from ddpm import distributed, params
from ddpm.completion import (GRADIENT_ROUTES, ROUTE_NAMES, completion_kwargs, half_tasks, nearest_completions,
                             sweep_row, sweep_settings)
from ddpm.data import load_mnist
from ddpm.diffusion import Diffusion
from ddpm.figures import completion_sweep_figure, save_figure
from ddpm.guidance import complete_image
from ddpm.io import save_json
from ddpm.judge import judge_images, load_judge
from ddpm.pretrained import load_unet
from ddpm.samplers import image_generators
from ddpm.stage import run_stage

RAW, JUDGE, OUT = Path("data/mnist/raw"), Path("data/mnist/judge/judge.pt"), Path("reports/completion_sweep")
MODEL = Path("data/mnist/model")


def main() -> None:
    p = params.load_stage("completion_sweep")
    cp = p["completion_sweep"]
    world, device = distributed.init(cp["device"])
    diffusion = Diffusion.from_params(p["diffusion"])
    model = load_unet(MODEL, p["diffusion"], device, cp["amp"],
                      batch=(cp["batch_size"], "completion_sweep.batch_size"))
    (judge, _), (test, labels) = load_judge(JUDGE, device), load_mnist(RAW, "test")
    idx, y, masks = half_tasks(test, cp["images"], cp["seed"])
    k = cp["completions"]
    y_rep, m_rep = y.repeat_interleave(k, 0), masks.repeat_interleave(k, 0)  # image-major: k completions each
    sampling = {"sampler": cp["sampler"], "steps": cp["steps"], "eta": cp["eta"]}
    train = load_mnist(RAW, "train")[0]  # for the lookup baseline: the training digits nearest on the given half
    rows = []
    for route, scale in sweep_settings(cp["scales"]):
        t0 = time.time()
        completions = nearest_completions(train, y, masks, k) if route == "nearest" else distributed.run_sharded(
            len(y_rep), cp["batch_size"], world,  # under torchrun each rank completes its share; rank 0 gathers
            lambda lo, hi: complete_image(diffusion, model, y_rep[lo:hi].to(device), m_rep[lo:hi].to(device),
                                          generator=image_generators(cp["seed"], range(lo, hi), device),
                                          **completion_kwargs(route, scale), **sampling), tuple(y.shape[1:]))
        if world.is_main:
            seconds = time.time() - t0  # the completions' time, not the judge's
            predicted = judge_images(judge, completions).probs.argmax(1)
            rows.append(sweep_row(route, scale, completions, predicted, labels[idx], test[idx], masks, seconds))
            print(rows[-1])
    distributed.shutdown()
    if world.is_main:
        save_json(rows, OUT / "table.json")
        for route in GRADIENT_ROUTES:
            save_json([{"scale": r["scale"], "accuracy": r["accuracy"]} for r in rows if r["route"] == route],
                      OUT / f"accuracy_vs_scale_{route}.json")
        save_figure(completion_sweep_figure(rows, {r: ROUTE_NAMES[r] for r in GRADIENT_ROUTES}),
                    OUT / "accuracy_vs_scale.png", dpi=130)


if __name__ == "__main__":
    run_stage(main)
