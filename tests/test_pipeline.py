"""End to end: the real `dvc repro` on tiny params in a temporary copy of the project."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from ddpm.io import load_checkpoint

from tests.conftest import stage_env

ROOT = Path(__file__).resolve().parents[1]


def run(cmd, cwd, **kw):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory, mnist_dir):
    dst = tmp_path_factory.mktemp("project")
    for item in ("ddpm", "stages", "profiles", "dvc.yaml", "params.yaml", ".dvc", ".dvcignore", ".gitignore"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst / item)
    shutil.rmtree(dst / ".dvc" / "cache", ignore_errors=True)
    shutil.rmtree(dst / ".dvc" / "tmp", ignore_errors=True)
    p = yaml.safe_load((dst / "params.yaml").read_text())
    p["data"]["sources"] = [f"dir:{mnist_dir}"]
    p["diffusion"]["T"] = 50
    p["model"].update(channels=8, channel_mults=[1, 2], num_res_blocks=1, attention_levels=[1], heads=2, groups=4)
    p["train"].update(epochs=2, max_images=256, batch_size=64, log_every=2, monitor_n=4, monitor_steps=5, warmup_steps=2)
    p["sample"].update(n_eval=80, steps=10, batch_size=40, nproc=2)  # sharded over 2 gloo processes (torchrun)
    p["judge"].update(epochs=1, max_images=3000, min_accuracy=0.0)
    p["compare"].update(n=20, ddim_steps=[5, 10], raw_ddim_steps=[5], batch_size=20, nproc=2)
    p["cond"].update(epochs=1, guidance_scales=[0.0, 2.0], n_per_prompt=3, steps=5, batch_size=30, nproc=2)
    p["completion"].update(steps=5, sweep_images=4, sweep_completions=2, scales=[0.1, 0.5], batch_size=16, n_per_image=2,
                           nproc=2)
    p["report"]["posterior_check_t"] = [0, 1, 49]
    (dst / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    run(["git", "init", "-q"], dst)
    run(git + ["add", "-A"], dst)
    run(git + ["commit", "-qm", "tiny"], dst)
    env = stage_env(dst)
    run([sys.executable, "-m", "dvc", "repro", "report"], dst, env=env)  # the MNIST pipeline (CelebA: test_celeba)
    return dst


def test_dvc_repro_makes_every_output(project):
    assert json.loads((project / "data/mnist/source.json").read_text())["source"].startswith("dir:")
    ckpt = load_checkpoint(project / "data/mnist/model/checkpoint.pt")
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2
    grid = torch.load(project / "data/mnist/samples/grid.pt", weights_only=True)
    assert grid.shape == (16, 1, 28, 28) and grid.min() >= -1 and grid.max() <= 1
    assert torch.load(project / "data/mnist/samples/eval.pt", weights_only=True).shape == (80, 1, 28, 28)
    for fig in ("loss.png", "samples16.png", "monitor.png", "samples16_judged.png", "histogram.png", "per_class.png",
                "samplers.png"):
        assert (project / "reports/figures" / fig).stat().st_size > 1000
    html = (project / "reports/index.html").read_text()
    md = (project / "reports/report.md").read_text()
    assert "Assignment 1" in html and "\\tilde\\beta_t" in md and "figures/samples16.png" in md
    assert "Are they recognizable?" in md and "| ancestral | 50 | ema |" in md
    assert "Image completion" in md and "completion/completion.png" in md and "the MNIST twin" in md
    assert (project / "reports/completion/completion.png").stat().st_size > 1000
    assert (project / "reports/cond_mnist/grid.png").stat().st_size > 1000
    assert len(list((project / "reports/train_mnist/plots/images/monitor").glob("epoch_*.png"))) == 2


def test_metrics_plots_and_status(project):
    out = run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], project)
    metrics = json.loads(out)
    files = next(iter(metrics.values()))["data"]
    values = files["reports/train_mnist/metrics.json"]["data"]
    assert values["epochs"] == 2 and values["final_loss"] > 0
    evaluation = files["reports/evaluate/metrics.json"]["data"]
    for row in ("model", "floor_real_test", "noise", "blurred_test"):
        assert {"fid_clf", "recognizable", "coverage"} <= set(evaluation[row]), row
    assert evaluation["noise"]["fid_clf"] > evaluation["floor_real_test"]["fid_clf"]
    assert files["reports/judge/metrics.json"]["data"]["test_accuracy"] > 0.2  # above chance (0.1) after one tiny epoch
    run([sys.executable, "-m", "dvc", "plots", "show", "-o", "plots_html"], project)
    assert (project / "plots_html" / "index.html").exists()
    assert "up to date" in run([sys.executable, "-m", "dvc", "status", "report"], project)


def test_more_epochs_resume_instead_of_restarting_also_under_torchrun(project):
    p = yaml.safe_load((project / "params.yaml").read_text())
    p["train"]["epochs"] = 3
    p["train"]["nproc"] = 2  # and under torchrun (2 gloo processes), through the stage's launcher
    (project / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = stage_env(project)
    out = run([sys.executable, "-m", "dvc", "repro", "train_mnist"], project, env=env)
    assert "resuming after epoch 2" in out and "× 2 processes" in out
    assert load_checkpoint(project / "data/mnist/model/checkpoint.pt")["epoch"] == 3
