"""Why 0.7's diffusers DDIM rows read 0.000 recognizable: the same early model sampled five ways.

    python -m benchmarks.ddim_clipping [--steps 600] [--n 200]

Trains diffusers' documented recipe (benchmarks/peer.py) for --steps optimizer steps, then samples its EMA weights
with 25-step DDIM as 0.7's benchmark did (η = 0; `clip_sample=True`, inherited from the DDPM scheduler's config,
with the unclipped ε kept for the direction term), DDIM with ε re-derived from the clipped x̂₀
(`use_clipped_model_output=True`, what ours and lucidrains do), DDIM without clipping, DPM-Solver++ (which does not
clip), and the example's own DDPM sampler at 100 steps; each scored by the pipeline's judge (`dvc repro judge` first).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.bench import load_config
from benchmarks.contender import scored
from benchmarks.peer import DiffusersDocumented, diffusers_module
from ddpm.data import load_mnist
from ddpm.judge import judge_images, load_judge
from ddpm.metrics import split_test
from ddpm.report import table_markdown


def variants(n_steps: int) -> dict[str, tuple[str, int, dict, dict]]:
    """label → (scheduler, steps, config overrides, step() arguments)."""
    return {
        "DDIM, clipped x̂₀, ε kept (diffusers' default; 0.7)": ("ddim", n_steps, {}, {}),
        "DDIM, clipped x̂₀, ε re-derived": ("ddim", n_steps, {}, {"use_clipped_model_output": True}),
        "DDIM, no clipping": ("ddim", n_steps, {"clip_sample": False}, {}),
        "DPM-Solver++ 2M (no clipping)": ("dpm-solver++", n_steps, {}, {}),
        "DDPM, 100 steps, clipped x̂₀ (the example's pipeline)": ("ddpm", 100, {}, {}),
    }


@torch.no_grad()
def draw(peer: DiffusersDocumented, weights: dict, kind: str, steps: int, config: dict, kwargs: dict, n: int,
         seed: int) -> torch.Tensor:
    d = diffusers_module()
    cls = {"ddpm": d.DDPMScheduler, "ddim": d.DDIMScheduler, "dpm-solver++": d.DPMSolverMultistepScheduler}[kind]
    scheduler = cls.from_config(peer.scheduler.config, **config)
    scheduler.set_timesteps(steps)
    model, g = peer.sampling_model(weights), torch.Generator().manual_seed(seed)
    x = torch.randn(n, *peer.shape, generator=g)
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t.expand(n)), t, x, generator=g, **kwargs).prev_sample
    return x.clamp(-1, 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600, help="optimizer steps of the documented recipe")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--sampler-steps", type=int, default=25)
    a = ap.parse_args(argv)
    p = load_config("cpu", sections=["model"])
    raw = Path("data/mnist/raw")
    judge, reference = load_judge(Path("data/mnist/judge/judge.pt"))
    floor = scored(judge_images(judge, split_test(load_mnist(raw, "test")[0])[0][:a.n]), reference, 1.0)["fid_clf"]
    peer = DiffusersDocumented(p["model"], load_mnist(raw, "train")[0], budget_s=float(a.steps), seed=0)
    for i in range(a.steps):  # the cosine over a virtual clock of one second per step: it ends at the last step
        peer.train_step(float(i))
    weights, rows = peer.ema_weights(), []
    for label, (kind, steps, config, kwargs) in variants(a.sampler_steps).items():
        images = draw(peer, weights, kind, steps, config, kwargs, a.n, seed=0)
        s = scored(judge_images(judge, images), reference, floor)
        rows.append({"sampler": label, "recognizable": s["recognizable"], "fid_clf × floor": s["fid_ratio"],
                     "coverage": s["coverage"], "mean pixel": float(images.mean()),
                     "pixels at ±1": float((images.abs() > 0.99).float().mean())})
    print(f"diffusers' documented recipe after {a.steps} steps ({a.steps * peer.recipe['batch_size']} images), "
          f"N = {a.n}:\n")
    print(table_markdown(rows, {"recognizable": ".3f", "fid_clf × floor": ".1f", "coverage": ".3f",
                                "mean pixel": ".3f", "pixels at ±1": ".3f"}, left=1))


if __name__ == "__main__":
    main()
