"""Quality against minutes of training: ours (the CPU profile's recipe) and diffusers' documented recipe, trained
one after the other on this machine for the same wall-clock budgets, every snapshot scored by the pipeline's judge.

    python -m benchmarks.bench --quality-vs-time [--budgets 5 10 20] [--n 1000]

Each recipe trains once; its EMA weights are copied when its training clock (time spent in training steps and
the recipe's own checkpointing, not in snapshots) passes each budget. The snapshots are sampled afterwards, so
sampling never runs beside training; ours is sampled as the sample stage samples (its sampler, and autoguidance by
the early weights once train_mnist.guide_step has passed). Needs the pipeline's judge and MNIST: `dvc repro judge`
first.
"""
from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from torch import nn

from benchmarks.peer import PeerTrainer, sample_peer
from ddpm.data import load_mnist
from ddpm.device import pick_device
from ddpm.diffusion import Diffusion
from ddpm.distributed import World
from ddpm.evaluation import score_against_floor
from ddpm.figures import quality_vs_minutes_figure, save_figure
from ddpm.guidance import AutoGuidance
from ddpm.io import save_json, save_text
from ddpm.judge import judge_images, load_judge
from ddpm.metrics import score, split_test
from ddpm.recipe import TrainingData, build_run
from ddpm.report import table_markdown
from ddpm.samplers import sample_seeded
from ddpm.unet import UNet

RAW, JUDGE = Path("data/mnist/raw"), Path("data/mnist/judge/judge.pt")


def train_with_snapshots(step: Callable[[], None], snapshot: Callable[[], Any], budgets_min: list[float]
                         ) -> list[dict[str, Any]]:
    """Call step() until the training clock passes the last budget (or the run ends: step() raises StopIteration);
    at each budget, snapshot() (off the clock)."""
    clock, out, steps, ended = 0.0, [], 0, False
    for budget in sorted(budgets_min):
        while clock < budget * 60 and not ended:
            t0 = time.perf_counter()
            try:
                step()
            except StopIteration:  # its schedule is over before the budget: the snapshot says how many steps it made
                ended = True
                break
            clock += time.perf_counter() - t0
            steps += 1
        out.append({"minutes": budget, "trained_minutes": clock / 60, "steps": steps, "weights": snapshot()})
        print(f"  {budget:g} min: {steps} steps in {clock / 60:.1f} min of training", flush=True)
    return out


def train_ours(p: dict[str, dict[str, Any]], data: torch.Tensor, budgets: list[float], workdir: Path
               ) -> tuple[Diffusion, list[dict[str, Any]]]:
    """The CPU profile's train_mnist recipe (params.yaml's `profile: cpu` values), driven through the pipeline's own
    loop and checkpointer: snapshots of its EMA, each with the early EMA weights kept by train_mnist.guide_step once
    that step has passed (None before). A cosine learning rate spans the whole epochs closest to what the longest
    budget allows, timed on steps 5–35 of a probe run, as the peer's schedule spans its longest budget."""
    recipe = {**p["runtime"], **p["train_mnist"]}
    if recipe["lr_schedule"] == "cosine":
        timing = build_run("train_mnist", recipe, p["diffusion"], p["model"], TrainingData(data), torch.device("cpu"),
                           World(), running=workdir / "timing.pt").loop
        steps = timing.steps()
        for _ in range(5):
            next(steps)
        t0 = time.perf_counter()
        for _ in range(30):
            next(steps)
        rate = 30 / (time.perf_counter() - t0)
        recipe["epochs"] = max(1, round(max(budgets) * 60 * rate / timing.steps_per_epoch()))
        del timing, steps
        print(f"  cosine learning rate over {recipe['epochs']} epochs ({rate:.2f} steps/s)", flush=True)
    else:
        recipe["epochs"] = 100_000  # a constant rate does not depend on the run's length: the budgets end it
    loop = build_run("train_mnist", recipe, p["diffusion"], p["model"], TrainingData(data), torch.device("cpu"),
                     World(), running=workdir / "checkpoint.pt").loop  # checkpoints every epoch, as the stage does
    steps = loop.steps()

    def snapshot() -> dict[str, Any]:  # loop.guide is replaced, never changed in place: no copy needed
        return {"ema": copy.deepcopy(loop.ema.module.state_dict()), "guide": loop.guide}

    snapshots = train_with_snapshots(lambda: next(steps), snapshot, budgets)
    return loop.diffusion, [{**s, "images": s["steps"] * recipe["batch_size"]} for s in snapshots]


def train_peer(model_params: dict[str, Any], data: torch.Tensor, budgets: list[float], seed: int
               ) -> tuple[PeerTrainer, list[dict[str, Any]]]:
    """diffusers' recipe; its cosine schedule spans the steps it makes in the longest budget (timed on 30 steps after
    5 warm-up steps)."""
    probe = PeerTrainer(model_params, data, total_steps=10_000, seed=seed)
    for _ in range(5):
        probe.train_step()
    t0 = time.perf_counter()
    for _ in range(30):
        probe.train_step()
    total = int(max(budgets) * 60 / ((time.perf_counter() - t0) / 30))
    peer = PeerTrainer(model_params, data, total_steps=total, seed=seed)
    snapshots = train_with_snapshots(peer.train_step, lambda: copy.deepcopy(peer.ema_model().state_dict()), budgets)
    return peer, [{**s, "images": s["steps"] * 16, "schedule_steps": total} for s in snapshots]


def guided(model: nn.Module, bad: nn.Module, guide: dict[str, torch.Tensor] | None, w: float
           ) -> tuple[nn.Module, str]:
    """What samples a snapshot of ours, as the pipeline's sample stage would (sample.autoguidance = w): the model
    guided by the early weights `guide` loaded into `bad`, or the plain model where w = 0 or the budget came before
    train_mnist.guide_step (no early weights yet); and the sampler label's suffix saying which."""
    if not w or guide is None:
        return model, ""
    bad.load_state_dict(guide)
    return AutoGuidance(model, bad.eval(), w), f", autoguidance w = {w:g}"


def trial_name(sets: list[str], budgets: list[float], no_peer: bool) -> str:
    """A folder name for a trial: its settings and budgets, e.g. 'train_mnist.batch_size=64_8min'."""
    name = "_".join([*sets, "-".join(f"{b:g}" for b in budgets) + "min", *(["no-peer"] if no_peer else [])])
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", name)[:150]


def run(p: dict[str, dict[str, Any]], budgets: list[float], n: int, peer_steps: int, workdir: Path,
        seed: int = 0, peer: bool = True, label: str = "CPU profile") -> dict[str, Any]:
    """Train ours (and the peer's recipe), score every snapshot; the rows of the table and the real-digit floor."""
    device = pick_device("cpu")
    judge, reference = load_judge(JUDGE, device)
    x, _ = load_mnist(RAW, "train")
    real = split_test(load_mnist(RAW, "test")[0])[0][:n]
    real_out = judge_images(judge, real)
    floor = {**score(real_out.probs, real_out.features, reference), "fid_ratio": 1.0}
    sp, rows = p["sample"], []
    print("ours: training", flush=True)
    diffusion, ours = train_ours(p, x, budgets, workdir)
    peer_trainer, theirs = None, []
    if peer:
        print("diffusers: training", flush=True)
        peer_trainer, theirs = train_peer(p["model"], x, budgets, seed)
    model, bad = (UNet.from_params(p["model"], 1, diffusion.T) for _ in range(2))
    for snap in ours:
        model.load_state_dict(snap["weights"]["ema"])
        net, guidance = guided(model.eval(), bad, snap["weights"]["guide"], sp["autoguidance"])
        t0 = time.perf_counter()
        images = sample_seeded(diffusion, net, range(n), (1, 28, 28), seed, 250, "cpu", sampler=sp["sampler"],
                               steps=sp["steps"], eta=sp["eta"])
        rows.append({"recipe": f"ours ({label})", "sampler": f"{sp['sampler']} {sp['steps']} steps, η = {sp['eta']}{guidance}",
                     "minutes": snap["minutes"], "trained_minutes": snap["trained_minutes"], "steps": snap["steps"],
                     "images": snap["images"],
                     **score_against_floor(judge, reference, images, floor["fid_clf"]), "sample_seconds": time.perf_counter() - t0})
        print(rows[-1], flush=True)
    for snap in theirs:
        peer_trainer.model.load_state_dict(snap["weights"])
        for sampler in ("ddim", "dpm-solver++"):
            t0 = time.perf_counter()
            images = sample_peer(peer_trainer.model.eval(), peer_trainer.scheduler, sampler, peer_steps, n, 250, seed)
            rows.append({"recipe": "diffusers' example", "sampler": f"{sampler} {peer_steps} steps",
                         "minutes": snap["minutes"], "trained_minutes": snap["trained_minutes"], "steps": snap["steps"],
                     "images": snap["images"],
                         **score_against_floor(judge, reference, images, floor["fid_clf"]), "sample_seconds": time.perf_counter() - t0})
            print(rows[-1], flush=True)
    return {"n": n, "floor": floor, "rows": rows, "peer_schedule_steps": theirs[0]["schedule_steps"] if theirs else None}


def markdown(result: dict[str, Any], header: str) -> str:
    f = result["floor"]
    rows = [{"recipe": r["recipe"], "sampler": r["sampler"], "minutes": r["minutes"],
             "trained min": r.get("trained_minutes", r["minutes"]), "steps": r["steps"],
             "images seen": r["images"], "fid_clf": r["fid_clf"], "× floor": r["fid_ratio"],
             "recognizable": r["recognizable"], "coverage": r["coverage"], "sampling s": r["sample_seconds"]}
            for r in result["rows"]]
    formats = {"minutes": "g", "trained min": ".1f", "fid_clf": ".2f", "× floor": ".2f", "recognizable": ".3f", "coverage": ".3f",
               "sampling s": ".0f"}
    return "\n".join([header, "", f"N = {result['n']} samples per row, each against the same reference; real digits "
                      f"(the floor): fid_clf {f['fid_clf']:.2f}, recognizable {f['recognizable']:.3f}, coverage "
                      f"{f['coverage']:.3f}.", "", table_markdown(rows, formats, left=2)]) + "\n"


def write(result: dict[str, Any], header: str, out: Path) -> None:
    """quality_vs_time.json, .md and .png in `out`."""
    save_json(result, out / "quality_vs_time.json")
    save_text(markdown(result, header), out / "quality_vs_time.md")
    curves = {f"{label[0]}, {label[1]}": frame for label, frame in pd.DataFrame(result["rows"]).groupby(["recipe", "sampler"])}
    save_figure(quality_vs_minutes_figure(curves, result["floor"]["recognizable"]), out / "quality_vs_time.png", dpi=120)
