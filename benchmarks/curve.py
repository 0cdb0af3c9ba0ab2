"""Quality against minutes of training: ours (the CPU profile's recipe) and its peers, trained one after the other on
this machine for the same wall-clock budgets, every snapshot scored by the pipeline's judge.

    python -m benchmarks.bench --quality-vs-time [--budgets 5 10 20] [--n 1000] [--peers …]

Each contender trains once; its EMA weights are copied when its training clock (time spent in training steps and
the recipe's own checkpointing, not in snapshots) passes each budget. The snapshots are sampled afterwards, so
sampling never runs beside training. Ours is sampled as the sample stage samples (its sampler, and autoguidance by
the early weights once train_mnist.guide_step has passed); every peer with each of its samplers at the same number
of network evaluations per sample as ours: each is first screened on `screen_n` samples of another seed, and the
best (lowest fid_clf) is scored on N. The peers (benchmarks/peer*.py) follow a warm-up and cosine over the training
clock that ends at the longest budget (benchmarks/contender.py). Needs the pipeline's judge and MNIST:
`dvc repro judge` first.
"""
from __future__ import annotations

import contextlib
import copy
import re
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from torch import nn

from benchmarks.contender import Peer, Snapshot, scored
from benchmarks.peer import DiffusersDocumented, DiffusersTuned
from benchmarks.peer_flow import FlowMatchingTuned
from benchmarks.peer_lucidrains import LucidrainsTuned
from ddpm.data import load_mnist
from ddpm.device import pick_device
from ddpm.diffusion import Diffusion
from ddpm.distributed import World
from ddpm.figures import quality_vs_minutes_figure, save_figure
from ddpm.guidance import AutoGuidance
from ddpm.io import save_json, save_text
from ddpm.judge import judge_images, load_judge
from ddpm.metrics import split_test
from ddpm.params import ParamError
from ddpm.recipe import TrainingData, build_run
from ddpm.report import table_markdown
from ddpm.samplers import sample_seeded
from ddpm.unet import UNet

PEERS: dict[str, type[Peer]] = {"diffusers-tuned": DiffusersTuned, "lucidrains": LucidrainsTuned,
                                "flow-matching": FlowMatchingTuned, "diffusers-documented": DiffusersDocumented}
# Ours' settings were chosen by the trials recorded in docs/benchmark.md (0.2–0.6: 8-minute runs of one change each).
OURS_TUNING = "≥ 11 trials (docs/benchmark.md)"
RAW, JUDGE = Path("data/mnist/raw"), Path("data/mnist/judge/judge.pt")


def peer_trial(key: str, changes: dict[str, Any]) -> type[Peer]:
    """PEERS[key] with `changes` over its recipe (`--peer-set key.name=value`): a tuning trial, whose rows say so.
    Only the recipe's own keys, each of its default's type (an int where a float is expected is taken)."""
    cls, checked = PEERS[key], {}
    for name, value in changes.items():
        if name not in cls.recipe:
            raise ParamError(f"--peer-set {key}.{name}: not in {key}'s recipe; its keys: {', '.join(cls.recipe)}")
        default = cls.recipe[name]
        if isinstance(default, float) and isinstance(value, str):  # YAML reads 4e-3 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            fits = isinstance(value, type(default))
        else:  # a number: never a bool, an int only where the default is one
            fits = isinstance(value, (int, float) if isinstance(default, float) else int) and not isinstance(value, bool)
        if not fits:
            raise ParamError(f"--peer-set {key}.{name}={value!r}: expected {type(default).__name__}, "
                             f"like its default {default!r}")
        checked[name] = value
    if not checked:
        return cls
    said = ", ".join(f"{name}={value}" for name, value in checked.items())
    return type(cls.__name__, (cls,), {"recipe": {**cls.recipe, **checked}, "tuning": f"trial: {said}"})


def train_with_snapshots(step: Callable[[float], None], snapshot: Callable[[], Any], budgets_min: list[float]
                         ) -> list[dict[str, Any]]:
    """Call step(clock seconds so far) until the training clock passes the last budget (or the run ends: step() raises
    StopIteration); at each budget, snapshot() (off the clock)."""
    clock, out, steps, ended = 0.0, [], 0, False
    for budget in sorted(budgets_min):
        while clock < budget * 60 and not ended:
            t0 = time.perf_counter()
            try:
                step(clock)
            except StopIteration:  # its schedule is over before the budget: the snapshot says how many steps it made
                ended = True
                break
            clock += time.perf_counter() - t0
            steps += 1
        out.append({"minutes": budget, "trained_minutes": clock / 60, "steps": steps, "weights": snapshot()})
        print(f"  {budget:g} min: {steps} steps in {clock / 60:.1f} min of training", flush=True)
    return out


def train_ours(p: dict[str, dict[str, Any]], data: torch.Tensor, budgets: list[float], workdir: Path
               ) -> tuple[Diffusion, list[Snapshot]]:
    """The CPU profile's train_mnist recipe (params.yaml's `profile: cpu` values), driven through the pipeline's own
    loop and checkpointer: snapshots of its EMA, each with the early EMA weights kept by train_mnist.guide_step once
    that step has passed (None before). A cosine learning rate spans the whole epochs closest to what the longest
    budget allows, timed on steps 5–35 of a probe run (the pipeline's schedule counts epochs; the snapshot's
    lr_fraction says where it stood)."""
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

    snapshots = train_with_snapshots(lambda clock: next(steps), snapshot, budgets)
    return loop.diffusion, [Snapshot(s["minutes"], s["trained_minutes"], s["steps"], s["steps"] * recipe["batch_size"],
                                     loop.lr_at(max(0, s["steps"] - 1)) / recipe["lr"], s["weights"])
                            for s in snapshots]


def train_peer(peer: Peer, budgets: list[float]) -> list[Snapshot]:
    """A peer trained to the longest budget (its learning rate follows the clock), an EMA snapshot at each."""
    snapshots = train_with_snapshots(peer.train_step, lambda: (peer.ema_weights(), peer.lr_fraction()), budgets)
    return [Snapshot(s["minutes"], s["trained_minutes"], s["steps"], s["steps"] * peer.recipe["batch_size"],
                     s["weights"][1], s["weights"][0]) for s in snapshots]


def guided(model: nn.Module, bad: nn.Module, guide: dict[str, torch.Tensor] | None, w: float
           ) -> tuple[nn.Module, str]:
    """What samples a snapshot of ours, as the pipeline's sample stage would (sample.autoguidance = w): the model
    guided by the early weights `guide` loaded into `bad`, or the plain model where w = 0 or the budget came before
    train_mnist.guide_step (no early weights yet); and the sampler label's suffix saying which."""
    if not w or guide is None:
        return model, ""
    bad.load_state_dict(guide)
    return AutoGuidance(model, bad.eval(), w), f", autoguidance w = {w:g}"


def trial_name(sets: list[str], budgets: list[float], no_peer: bool, extra: tuple[str, ...] = ()) -> str:
    """A folder name for a trial: its settings and budgets, e.g. 'train_mnist.batch_size=64_8min'."""
    name = "_".join([*sets, "-".join(f"{b:g}" for b in budgets) + "min", *(["no-peer"] if no_peer else []), *extra])
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", name)[:150]


Sample = Callable[[int, int], torch.Tensor]  # (n, seed) → images in [−1, 1]


def best_sampler(samplers: dict[str, tuple[int, Sample]], screen_n: int, seed: int, judge: nn.Module,
                 reference: torch.Tensor, floor_fid: float) -> tuple[str, dict[str, float]]:
    """The sampler with the lowest fid_clf on screen_n samples of `seed` (the one there is, unscreened), and each
    sampler's screening fid_clf."""
    if len(samplers) == 1 or screen_n <= 0:
        return next(iter(samplers)), {}
    screened = {name: scored(judge_images(judge, draw(screen_n, seed)), reference, floor_fid)["fid_clf"]
                for name, (_, draw) in samplers.items()}
    return min(screened, key=screened.get), screened


def score_row(recipe: str, tuning: str, snap: Snapshot, samplers: dict[str, tuple[int, Sample]], n: int, seed: int,
              screen_n: int, judge: nn.Module, reference: torch.Tensor, floor_fid: float) -> dict[str, Any]:
    """One row of the table: the snapshot sampled n times with its best sampler, scored with standard errors."""
    name, screened = best_sampler(samplers, screen_n, seed + 1000, judge, reference, floor_fid)
    nfe, draw = samplers[name]
    t0 = time.perf_counter()
    images = draw(n, seed)
    seconds = time.perf_counter() - t0
    row = {"recipe": recipe, "sampler": name, "nfe": nfe, "minutes": snap.minutes, "trained_minutes": snap.trained_minutes,
           "steps": snap.steps, "images": snap.images, "lr_at_end": snap.lr_fraction, "tuning": tuning,
           "sample_seconds": seconds, "screened": screened,
           **scored(judge_images(judge, images), reference, floor_fid)}
    print({k: v for k, v in row.items() if k != "screened"}, flush=True)
    return row


def run(p: dict[str, dict[str, Any]], budgets: list[float], n: int, workdir: Path, seed: int = 0,
        peers: list[str] | tuple[str, ...] = tuple(PEERS), label: str = "CPU profile", screen_n: int = 200,
        nfe: int | None = None, peer_sets: dict[str, dict[str, Any]] | None = None, ours: bool = True
        ) -> dict[str, Any]:
    """Train ours (unless `ours` is False: a peer's tuning trial) and each peer (with `peer_sets[key]` over its
    recipe), score every snapshot; the rows of the table and the real-digit floor. Peers sample at `nfe` network
    evaluations per sample (default: as many as ours' sampler makes)."""
    classes = {key: peer_trial(key, (peer_sets or {}).get(key, {})) for key in peers}
    device = pick_device("cpu")
    judge, reference = load_judge(JUDGE, device)
    x, _ = load_mnist(RAW, "train")
    real = split_test(load_mnist(RAW, "test")[0])[0][:n]
    real_figures = scored(judge_images(judge, real), reference, 1.0)
    floor = {**real_figures, "fid_ratio": 1.0, "fid_ratio_se": real_figures["fid_clf_se"] / real_figures["fid_clf"]}
    sp, rows = p["sample"], []
    diffusion, snapshots = Diffusion.from_params(p["diffusion"]), []
    if ours:
        print("ours: training", flush=True)
        diffusion, snapshots = train_ours(p, x, budgets, workdir)
    guided_nfe = sp["steps"] * (2 if sp["autoguidance"] else 1)
    nfe = nfe or guided_nfe
    trained = []
    for key in peers:
        print(f"{key}: training", flush=True)
        peer = classes[key](p["model"], x, max(budgets) * 60, seed, nfe=nfe)
        trained.append((peer, train_peer(peer, budgets)))
    model, bad = (UNet.from_params(p["model"], 1, diffusion.T) for _ in range(2))
    for snap in snapshots:
        model.load_state_dict(snap.weights["ema"])
        net, guidance = guided(model.eval(), bad, snap.weights["guide"], sp["autoguidance"])
        name = f"{sp['sampler']} {sp['steps']} steps, η = {sp['eta']}{guidance}"
        draw = (lambda k, s, net=net: sample_seeded(diffusion, net, range(k), (1, 28, 28), s, 250, "cpu",
                                                    sampler=sp["sampler"], steps=sp["steps"], eta=sp["eta"]))
        rows.append(score_row(f"ours ({label})", OURS_TUNING, snap, {name: (guided_nfe if guidance else sp["steps"], draw)},
                              n, seed, screen_n, judge, reference, floor["fid_clf"]))
    for peer, snapshots in trained:
        for snap in snapshots:
            samplers = {name: (k, lambda m, s, name=name, w=snap.weights: peer.sample(w, name, m, s))
                        for name, k in peer.samplers().items()}
            rows.append(score_row(peer.label, peer.tuning, snap, samplers, n, seed, screen_n, judge, reference,
                                  floor["fid_clf"]))
    return {"n": n, "screen_n": screen_n, "floor": floor, "rows": rows, "budgets": budgets, "peers": list(peers),
            "recipes": {peer.label: peer.recipe for peer, _ in trained}}


def pm(value: float, se: float, fmt: str) -> str:
    return f"{value:{fmt}} ± {se:{fmt}}"


def markdown(result: dict[str, Any], header: str) -> str:
    f = result["floor"]
    rows = [{"recipe": r["recipe"], "sampler": r["sampler"], "NFE": r["nfe"], "minutes": r["minutes"],
             "trained min": r["trained_minutes"], "steps": r["steps"], "images seen": r["images"],
             "lr at end": r["lr_at_end"], "settings from": r["tuning"], "fid_clf × floor": pm(r["fid_ratio"], r["fid_ratio_se"], ".2f"),
             "recognizable": pm(r["recognizable"], r["recognizable_se"], ".3f"), "coverage": r["coverage"],
             "sampling s": r["sample_seconds"]}
            for r in result["rows"]]
    formats = {"minutes": "g", "trained min": ".1f", "lr at end": ".2f", "coverage": ".3f", "sampling s": ".0f"}
    return "\n".join([header, "", f"N = {result['n']} samples per row (± one standard error: binomial for recognizable, "
                      f"a bootstrap for fid_clf), each against the same reference; real digits (the floor): fid_clf "
                      f"{f['fid_clf']:.2f}, recognizable {f['recognizable']:.3f}, coverage {f['coverage']:.3f}. NFE: "
                      f"network evaluations per sample; a peer's sampler is the best of its samplers on "
                      f"{result.get('screen_n', 0)} samples of another seed. lr at end: the learning rate at the "
                      "snapshot, as a share of the peak; settings from: the tuning trials that chose them.", "",
                      table_markdown(rows, formats, left=2)]) + "\n"


def write(result: dict[str, Any], header: str, out: Path) -> None:
    """quality_vs_time.json, .md and .png in `out`."""
    save_json(result, out / "quality_vs_time.json")
    save_text(markdown(result, header), out / "quality_vs_time.md")
    curves = {label: frame for label, frame in pd.DataFrame(result["rows"]).groupby("recipe")}
    save_figure(quality_vs_minutes_figure(curves, result["floor"]["recognizable"]), out / "quality_vs_time.png", dpi=120)
