"""The prepared GPU check: the full specification's cost on one CUDA GPU in a few minutes, one JSON.

    python -m benchmarks.gpu_check [--out reports/bench/gpu_check.json] [--train-seconds 90]
    python -m benchmarks.gpu_check --smoke      # on a CPU, tiny sizes: the check of the check (CI runs it)

1. MNIST training, the full specification (params.yaml's gpu profile: the full-size UNet, bf16 autocast where
   native), one process through `torchrun`, for a timed fraction of an epoch: steady-state images/s after 10
   warm-up steps, FLOPs per image (torch's counter), MFU against the GPU's bf16 peak (its datasheet's dense figure
   where the GPU is known, and a measured bf16 matmul), peak memory, and 20 epochs extrapolated;
2. 16 samples of that model with the 1000-step ancestral sampler (timed; the grid is written beside the JSON);
3. the CelebA project's stages (download_celeba → embed_clip → train_celeba → sweep_celeba → report_celeba, each
   `dvc repro -s` in a scratch copy of the project) on generated faces with a tiny random CLIP, at 64×64 for a few
   hundred training steps; every stage's seconds.

It installs nothing: the README's set-up is all it needs. MNIST is read from data/mnist/raw where present, else
digits-shaped noise stands in (a rate does not depend on the pixels; the JSON says which).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks.bench import describe, load_config, matmul_peak, sync
from benchmarks.synthetic import make_celeba
from ddpm.io import save_json

ROOT = Path(__file__).resolve().parents[1]
TINY_CLIP = ROOT / "tests" / "fixtures" / "tiny-clip.json"
# Dense bf16 tensor-core peaks from the datasheets, TFLOP/s (SXM parts).
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "L4": 121.0, "A10G": 70.0}
SMOKE = {"model": {"channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attention_levels": [1], "heads": 2,
                   "groups": 4, "dropout": 0.0, "patch_size": 1, "conditioning": "add"},
         "T": 20, "batch_size": 16, "celeba_size": 16, "celeba_faces": 24}


def datasheet_peak(name: str) -> float | None:
    return next((v * 1e12 for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def mnist_data(raw: Path, smoke: bool) -> tuple[torch.Tensor, str]:
    if not smoke and (raw / "train-images-idx3-ubyte").exists():
        from ddpm.data import load_mnist
        return load_mnist(raw, "train")[0], "MNIST"
    g = torch.Generator().manual_seed(0)
    return torch.rand(512 if smoke else 60_000, 1, 28, 28, generator=g) * 2 - 1, "noise of MNIST's shape (no data/mnist/raw)"


def train_worker(a: argparse.Namespace) -> None:
    """Under torchrun: train the gpu profile's train_mnist recipe for a.train_seconds, sample 16 images, write JSON."""
    from benchmarks.bench import training_flops
    from ddpm import distributed
    from ddpm.device import autocast_dtype
    from ddpm.figures import image_grid_figure, save_figure
    from ddpm.recipe import TrainingData, build_run
    from ddpm.samplers import sample_seeded

    p = load_config("gpu", sections=["runtime", "diffusion", "model", "train_mnist"])
    recipe = {**p["runtime"], **p["train_mnist"], "monitor_judge_n": 0}  # the monitoring grid waits for an epoch's end
    if a.smoke:
        p["model"], p["diffusion"]["T"] = SMOKE["model"], SMOKE["T"]
        recipe.update(batch_size=SMOKE["batch_size"], warmup_steps=1)
    world, device = distributed.init(recipe["device"])
    x, data = mnist_data(ROOT / "data" / "mnist" / "raw", a.smoke)
    work = Path(a.workdir)
    run = build_run("train_mnist", recipe, p["diffusion"], p["model"], TrainingData(x), device, world,
                    running=work / "checkpoint.pt")
    loop, batch = run.loop, recipe["batch_size"]
    steps, warmup = loop.steps(), 3 if a.smoke else 10
    t_start = time.perf_counter()
    for _ in range(warmup):
        next(steps)
    sync(device)
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < a.train_seconds or n < 2:
        next(steps)
        n += 1
    sync(device)
    seconds = time.perf_counter() - t0
    images_per_s = n * batch / seconds
    flops = training_flops(p["model"], loop.diffusion, device, batch) / batch
    bf16 = device.type == "cuda" or autocast_dtype(recipe["amp"], device) is not None
    measured_peak = matmul_peak(device, torch.bfloat16 if bf16 else torch.float32, 256 if a.smoke else 8192, 2.0)
    spec_peak = datasheet_peak(describe(device)) if device.type == "cuda" else None
    peak_mib = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    train = {"data": data, "batch_size": batch, "parameters_m": sum(q.numel() for q in loop.net.parameters()) / 1e6,
             "precision": "bf16 autocast" if loop.config.autocast is not None else "fp32",
             "warmup_steps_timed_out": warmup, "steps": n, "seconds": seconds, "images_per_s": images_per_s,
             "ms_per_step": 1000 * seconds / n, "seconds_with_warmup": time.perf_counter() - t_start,
             "flops_per_image": flops, "tflops": flops * images_per_s / 1e12,
             "measured_matmul_peak_tflops": measured_peak / 1e12,
             "mfu_vs_measured_matmul": flops * images_per_s / measured_peak,
             "datasheet_bf16_peak_tflops": spec_peak / 1e12 if spec_peak else None,
             "mfu_vs_datasheet_bf16": flops * images_per_s / spec_peak if spec_peak else None,
             "peak_memory_mib": peak_mib, "epoch_images": 60_000,
             "extrapolated_20_epochs_min": 20 * 60_000 / images_per_s / 60}
    net = loop.ema.module
    t0 = time.perf_counter()
    with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        images = sample_seeded(loop.diffusion, net, range(16), (1, 28, 28), 0, 16, device, sampler="ancestral",
                               steps=loop.diffusion.T)
    sync(device)
    sample = {"n": 16, "sampler": f"ancestral, {loop.diffusion.T} steps", "seconds": time.perf_counter() - t0,
              "finite": bool(torch.isfinite(images).all())}
    save_figure(image_grid_figure(images.float(), 4, f"16 samples after {n + warmup} steps"), work / "samples.png")
    (work / "train.json").write_text(json.dumps({"train_mnist": train, "sample_mnist": sample}))
    distributed.shutdown()


def run_train(work: Path, a: argparse.Namespace) -> dict[str, Any]:
    """The training worker as one process through torchrun (as `runtime.nproc` > 1 would launch a stage)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m",
           "benchmarks.gpu_check", "--worker", "--workdir", str(work), "--train-seconds", str(a.train_seconds),
           *(["--smoke"] if a.smoke else [])]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode != 0:
        raise RuntimeError(f"gpu_check: the torchrun training worker failed (exit {r.returncode}): "
                           + (r.stderr.strip().splitlines() or ["no output"])[-1])
    out = json.loads((work / "train.json").read_text())
    out["train_mnist"]["process_seconds"] = time.perf_counter() - t0
    return out


def celeba_project(dst: Path, smoke: bool) -> Path:
    """A scratch copy of the project whose celeba/ reads generated faces and a tiny random CLIP."""
    dst.mkdir(parents=True)
    for item in ("ddpm", "stages", "celeba", "dvc.yaml", "params.yaml", ".dvc", ".dvcignore", ".gitignore"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst / item,
                                                           **({"ignore": shutil.ignore_patterns("cache", "tmp", "data", "reports")} if src.is_dir() else {}))
    faces = SMOKE["celeba_faces"] if smoke else 1024
    make_celeba(dst / "celeba" / "data" / "raw" / "celeba", faces)
    path = dst / "celeba" / "params.yaml"
    p = yaml.safe_load(path.read_text())
    prompts = ["a photo of a man", "a photo of a smiling woman"]
    p["download_celeba"].update(download=False, image_size=SMOKE["celeba_size"] if smoke else 64)
    p["clip"].update(model="tiny-clip", pretrained="none", config=str(TINY_CLIP))
    p["embed_clip"].update(batch_size=8 if smoke else 256)
    # 1 024 faces at batch 128: 8 steps an epoch, 40 epochs = 320 steps (smoke: 2 epochs of 3 steps)
    p["train_celeba"].update(epochs=2 if smoke else 40, batch_size=8 if smoke else 128, log_every=10,
                             warmup_steps=1 if smoke else 100, monitor_steps=3 if smoke else 50,
                             monitor_prompts=prompts)
    p["sweep_celeba"].update(guidance_scales=[0.0, 3.0], prompts=prompts, n_per_prompt=2 if smoke else 8,
                             steps=4 if smoke else 50, batch_size=4 if smoke else 64)
    if smoke:
        p["diffusion"]["T"] = SMOKE["T"]
        p["celeba_model"].update(channels=8, channel_mults=[1, 2], num_res_blocks=1, attention_levels=[1], heads=2,
                                 groups=4)
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    git = ["git", "-c", "user.email=check@localhost", "-c", "user.name=check"]
    for cmd in (["git", "init", "-q"], git + ["add", "-A"], git + ["commit", "-qm", "gpu check"]):
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)
    return dst / "celeba"


def run_celeba(work: Path, smoke: bool) -> dict[str, Any]:
    """Each CelebA stage by itself (`dvc repro -s`), in order, timed."""
    folder = celeba_project(work / "project", smoke)
    env = {**os.environ, "PYTHONPATH": str(folder.parent),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    seconds = {}
    for stage in ("download_celeba", "embed_clip", "train_celeba", "sweep_celeba", "report_celeba"):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "dvc", "repro", "-s", stage], cwd=folder, capture_output=True,
                           text=True, env=env)
        if r.returncode != 0:
            tail = (r.stderr.strip() or r.stdout.strip()).splitlines() or ["no output"]
            raise RuntimeError(f"gpu_check: celeba stage {stage} failed (exit {r.returncode}): {tail[-1]}")
        seconds[stage] = time.perf_counter() - t0
    return {"faces": SMOKE["celeba_faces"] if smoke else 1024, "image_size": SMOKE["celeba_size"] if smoke else 64,
            "clip": "tiny random (tests/fixtures/tiny-clip.json)", "stage_seconds": seconds}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on any device (CI's check of this script)")
    ap.add_argument("--train-seconds", type=float, default=90.0, help="timed training after the warm-up steps")
    ap.add_argument("--out", type=Path, default=Path("reports/bench/gpu_check.json"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default="", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return train_worker(a)
    if not a.smoke and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA GPU here; run it on a GPU machine, or with --smoke to check the script")
    if a.out.exists():
        raise SystemExit(f"gpu_check: {a.out} exists; move it away or pass another --out")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {"date": time.strftime("%Y-%m-%d %H:%M"), "device": describe(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
                  "torch": torch.__version__, "smoke": a.smoke, "command": "python -m benchmarks.gpu_check"
                  + (" --smoke" if a.smoke else "") + f" --train-seconds {a.train_seconds:g}",
                  **run_train(work, a), "celeba": run_celeba(work, a.smoke)}
        result["total_seconds"] = time.perf_counter() - t0
        a.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "samples.png", a.out.with_suffix(".png"))
        save_json(result, a.out)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
