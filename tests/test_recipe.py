"""ddpm/recipe.py: a training stage's run: resuming its dvclive history, its refusals, its model folder."""
from pathlib import Path
import shutil

import pytest
import torch

from ddpm.checkpoint import load_checkpoint
from ddpm.distributed import World
from ddpm.recipe import TrainingRun
from tests.test_train import TINY_MODEL, make_trainer


def test_a_resumed_run_continues_its_dvclive_history_where_dvc_deleted_it(tmp_path):
    """DVC deletes a stage's outputs (dvclive's folder too) before it runs the stage again: the history comes back
    from the checkpoint, exactly as far as the checkpoint went, and the finished checkpoint goes to the output."""
    live = tmp_path / "live"
    first = make_trainer(tmp_path / "r.pt", 1)
    TrainingRun(first, first.saver).run(live, tmp_path / "first" / "checkpoint.pt")
    (tmp_path / "r.pt").write_bytes((tmp_path / "first" / "checkpoint.pt").read_bytes())  # as if killed after it
    loss = live / "plots" / "metrics" / "train" / "loss.tsv"
    first = loss.read_text()
    shutil.rmtree(live)
    second = make_trainer(tmp_path / "r.pt", 2)
    TrainingRun(second, second.saver).run(live, tmp_path / "model" / "checkpoint.pt")
    assert loss.read_text().startswith(first) and len(loss.read_text().splitlines()) > len(first.splitlines())
    finished = load_checkpoint(tmp_path / "model" / "checkpoint.pt")
    assert finished["epoch"] == 2 and finished["live"] and not (tmp_path / "r.pt").exists()  # DVC caches the output


@pytest.mark.parametrize("step", [3, 4])
def test_a_guide_step_not_before_the_last_step_is_refused_in_one_line(tmp_path, step):
    from ddpm.params import read_yaml, validate_all
    from ddpm.recipe import TrainingData, build_run
    p = validate_all(read_yaml(Path(__file__).resolve().parents[1] / "params.yaml"))
    recipe = {**p["runtime"], **p["train_mnist"], "epochs": 1, "batch_size": 16, "guide_step": step}  # 3 steps
    with pytest.raises(ValueError, match=rf"^train_mnist.guide_step = {step}: not before the run's last step \(3\)"):
        build_run("train_mnist", recipe, p["diffusion"], TINY_MODEL, TrainingData(torch.rand(48, 1, 28, 28)),
                  torch.device("cpu"), World(), running=tmp_path / "c.pt")
