"""A killed run loses nothing, damaged files are named, the same seed gives the same images."""
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddpm import Diffusion, linear_betas
from ddpm import complete_image, sample_batched
from ddpm.checkpoint import load_checkpoint, previous_path
from ddpm.completion import half_mask
from tests.conftest import randomize, tiny_unet
from tests.test_train import make_trainer

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "tests" / "scripts" / "train_tiny.py"
EPOCHS = 8


def train_process(checkpoint: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(TARGET), str(checkpoint), str(EPOCHS)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def comparable(state: dict) -> dict:
    return {k: v for k, v in state.items() if k != "history"} | {"losses": [h["loss"] for h in state["history"]]}


def assert_same(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_sigkill_at_random_points_then_resume_ends_with_the_same_state(tmp_path):
    """SIGKILL mid-epoch, mid-save or at start-up, again and again; every resume continues where the last
    good checkpoint left off, and the end state (model, EMA, Adam, RNG, losses) equals an uninterrupted run."""
    straight = train_process(tmp_path / "straight.pt")
    while not (line := straight.stdout.readline()).startswith("READY"):
        assert line, "the training process ended before it was ready"
    ready = time.monotonic()
    assert straight.wait(timeout=300) == 0
    training = time.monotonic() - ready  # a kill lands within a sixth of it: fast CPUs too see 5 kills before the end
    rng, kills, cycles = random.Random(0), 0, 0
    killed = tmp_path / "killed" / "checkpoint.pt"
    while cycles < 40:
        cycles += 1
        proc = train_process(killed)
        while not (line := proc.stdout.readline()).startswith("READY"):  # after "resuming after epoch …"
            assert line, "the training process ended before it was ready"
        time.sleep(rng.uniform(0.02, 1 / 6) * training)
        if proc.poll() is None and kills < 6:  # then let the last start finish: a slow CPU needs no 40 starts
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            if killed.exists() or previous_path(killed).exists():  # what a kill leaves always loads
                load_checkpoint(killed if killed.exists() else previous_path(killed))
        else:
            assert proc.wait(timeout=300) == 0 and "DONE" in proc.stdout.read()
            break
    assert kills >= 5, f"only {kills} kills landed before the run finished"
    print(f"{kills} SIGKILLs, {cycles} starts")
    assert_same(comparable(load_checkpoint(tmp_path / "straight.pt")), comparable(load_checkpoint(killed)))


def test_a_full_disk_stops_before_writing_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    ckpt = tmp_path / "checkpoint.pt"
    trainer = make_trainer(ckpt, 1)
    trainer.fit()
    before = ckpt.read_bytes()
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    trainer.config.epochs = 2
    with pytest.raises(OSError, match=r"checkpoint needs [\d.]+ MiB but only 0.0 MiB are free"):
        trainer.fit()
    assert ckpt.read_bytes() == before and load_checkpoint(ckpt)["epoch"] == 1


def test_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    trainer = make_trainer(ckpt, 1)
    trainer.fit()
    trainer.config.epochs = 2
    trainer.data[:] = float("nan")
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 3; the last good checkpoint .* is kept"):
        trainer.fit()
    assert load_checkpoint(ckpt)["epoch"] == 1


def test_same_seed_same_samples_and_completions():
    d = Diffusion(linear_betas(100))
    torch.manual_seed(0)
    model = randomize(tiny_unet()).eval()

    def draw(seed: int) -> torch.Tensor:
        return sample_batched(d, model, 5, (1, 28, 28), 2, generator=torch.Generator().manual_seed(seed), sampler="ddim",
                              steps=10, eta=1.0)

    assert torch.equal(draw(3), draw(3)) and not torch.equal(draw(3), draw(4))
    y = draw(5)

    def complete(seed: int) -> torch.Tensor:
        return complete_image(d, model, y, half_mask((1, 28, 28), "bottom"), 0.5, "mean", sampler="ddim", steps=10, eta=1.0,
                                generator=torch.Generator().manual_seed(seed))

    assert torch.equal(complete(1), complete(1)) and not torch.equal(complete(1), complete(2))


def test_sampling_holds_one_batch_at_a_time():
    """N samples are drawn batch_size at a time and gathered on the CPU: memory is bounded by one batch."""
    d = Diffusion(linear_betas(100))
    seen = []
    model = tiny_unet().eval()

    def spy(x, t, **kw):
        seen.append(len(x))
        return model(x, t, **kw)

    out = sample_batched(d, spy, 10, (1, 28, 28), 4, sampler="ddim", steps=2)
    assert out.shape == (10, 1, 28, 28) and max(seen) == 4 and out.device.type == "cpu"
