"""benchmarks/gpu_check.py, the prepared GPU check, in its --smoke mode on the CPU: training through torchrun, the
ancestral sampler's 16 images and every CelebA stage on generated faces, one JSON; and its refusals."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_the_smoke_check_writes_every_figure(tmp_path):
    out = tmp_path / "gpu_check.json"
    r = check("--smoke", "--train-seconds", "2", "--out", str(out))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    result = json.loads(out.read_text())
    train = result["train_mnist"]
    assert result["smoke"] and train["steps"] >= 2 and train["images_per_s"] > 0 and train["flops_per_image"] > 0
    assert 0 < train["mfu_vs_measured_matmul"] < 1.5 and train["extrapolated_20_epochs_min"] > 0
    assert train["process_seconds"] >= train["seconds"]
    assert result["sample_mnist"]["finite"] and result["sample_mnist"]["n"] == 16
    assert result["sample_mnist"]["sampler"] == "ancestral, 20 steps"  # every step of the smoke schedule
    stages = result["celeba"]["stage_seconds"]
    assert list(stages) == ["download_celeba", "embed_clip", "train_celeba", "sweep_celeba", "report_celeba"]
    assert all(s > 0 for s in stages.values()) and result["total_seconds"] > sum(stages.values())
    assert out.with_suffix(".png").stat().st_size > 1000

    again = check("--smoke", "--out", str(out))  # a finished result is never overwritten
    assert again.returncode != 0 and f"{out} exists" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is here: the full check would run")
def test_without_a_gpu_it_says_so_in_one_line(tmp_path):
    r = check("--out", str(tmp_path / "x.json"))
    assert r.returncode != 0 and "no CUDA GPU here" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()
