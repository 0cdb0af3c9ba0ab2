"""Stage compare_samplers: the same model scored with the ancestral sampler and DDIM at several step counts."""
import time
from pathlib import Path

from ddpm import distributed, params
from ddpm.cli import run_stage
from ddpm.factory import load_for_sampling, make_diffusion, make_unet
from ddpm.io import save_json
from ddpm.judge import judge_images, load_judge, load_reference
from ddpm.metrics import score

CHECKPOINT, JUDGE = Path("data/mnist/model/checkpoint.pt"), Path("data/mnist/judge/judge.pt")
OUT = Path("reports/compare")


def main() -> None:
    p = params.load(["diffusion", "model", "compare"])
    cp = p["compare"]
    world, device = distributed.init(cp["device"])
    diffusion = make_diffusion(p["diffusion"])
    judge = load_judge(JUDGE, device)
    reference = load_reference(JUDGE)
    configs = [("ema", None)] if cp["ancestral"] else []
    configs += [("ema", s) for s in cp["ddim_steps"]] + [("raw", s) for s in cp["raw_ddim_steps"]]
    checkpoint_key = {"ema": "ema", "raw": "model"}
    models = {w: load_for_sampling(CHECKPOINT, make_unet(p["model"], 1, diffusion.T), device, cp["amp"], checkpoint_key[w])
              for w in {w for w, _ in configs}}
    rows = []
    for weights, steps in configs:
        t0 = time.time()
        x = distributed.sample_sharded(diffusion, models[weights], cp["n"], (1, 28, 28), cp["batch_size"], cp["seed"],
                                       world, device, steps=steps, eta=0.0)
        seconds = time.time() - t0
        if not world.is_main:  # rank 0 judges and writes
            continue
        out = judge_images(judge, x)
        rows.append({"sampler": "ancestral" if steps is None else "ddim", "steps": steps or diffusion.T,
                     "weights": weights, **score(out.probs, out.features, reference), "seconds": seconds,
                     "ms_per_image": 1000 * seconds / cp["n"]})
        print(rows[-1])
    distributed.shutdown()
    if not world.is_main:
        return
    save_json({"n": cp["n"], "device": str(device), "processes": world.size, "rows": rows}, OUT / "samplers.json")
    ema_rows = [{k: r[k] for k in ("steps", "fid_clf", "recognizable", "seconds")} for r in rows if r["weights"] == "ema"]
    save_json(ema_rows, OUT / "quality_vs_steps.json")
    best = min(rows, key=lambda r: r["fid_clf"])
    save_json({"n": cp["n"], "best_fid_clf": best["fid_clf"], "best_sampler": f"{best['sampler']} {best['steps']} ({best['weights']})"},
              OUT / "metrics.json")


if __name__ == "__main__":
    run_stage(main)
