"""Stage compare_samplers: the same model scored with the ancestral sampler and DDIM at several step counts."""
import time
from pathlib import Path

from ddpm import Diffusion, distributed, params
from ddpm.checkpoint import load_unet
from ddpm.cli import run_stage
from ddpm.io import save_json
from ddpm.judge import judge_images, load_judge
from ddpm.metrics import score

CHECKPOINT, JUDGE, OUT = Path("data/mnist/model/checkpoint.pt"), Path("data/mnist/judge/judge.pt"), Path("reports/compare_samplers")


def main() -> None:
    p = params.load_stage("compare_samplers")
    cp = p["compare_samplers"]
    world, device = distributed.init(cp["device"])
    diffusion = Diffusion.from_params(p["diffusion"])
    judge, reference = load_judge(JUDGE, device)
    configs = [("ema", "ancestral", diffusion.T)] if cp["ancestral"] else []
    configs += [("ema", "ddim", s) for s in cp["ddim_steps"]] + [("raw", "ddim", s) for s in cp["raw_ddim_steps"]]
    models = {w: load_unet(CHECKPOINT, p["model"], diffusion.T, device, cp["amp"], which={"ema": "ema", "raw": "model"}[w])
              for w in {w for w, _, _ in configs}}
    rows = []
    for weights, sampler, steps in configs:
        t0 = time.time()
        x = distributed.sample_sharded(diffusion, models[weights], cp["n"], (1, 28, 28), cp["batch_size"], cp["seed"],
                                       world, device, sampler=sampler, steps=steps, eta=0.0)
        seconds = time.time() - t0
        if world.is_main:  # rank 0 judges and writes
            out = judge_images(judge, x)
            rows.append({"sampler": sampler, "steps": steps, "weights": weights, **score(out.probs, out.features, reference),
                         "seconds": seconds, "ms_per_image": 1000 * seconds / cp["n"]})
            print(rows[-1])
    distributed.shutdown()
    if world.is_main:
        save_json({"n": cp["n"], "device": str(device), "processes": world.size, "rows": rows}, OUT / "samplers.json")
        save_json([{k: r[k] for k in ("steps", "fid_clf", "recognizable", "seconds")} for r in rows if r["weights"] == "ema"],
                  OUT / "quality_vs_steps.json")


if __name__ == "__main__":
    run_stage(main)
