from pathlib import Path

import pytest
import torch

from ddpm import Diffusion, linear_betas
from ddpm.checkpoint import load_checkpoint, load_weights
from ddpm.pretrained import load_unet, save_pretrained
from ddpm.checkpoint import Checkpointer
from ddpm.train import TrainConfig, TrainLoop
from tests.conftest import tiny_unet

TINY_MODEL = {"channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attention_levels": [1], "heads": 2,
              "dropout": 0.0, "groups": 4, "patch_size": 1}  # tiny_unet's, as a params section
CFG = dict(epochs=2, batch_size=16, lr=1e-3, warmup_steps=3, ema_decay=0.9, grad_clip=1.0, seed=7, log_every=2)


def make_trainer(ckpt: Path, epochs: int, fingerprint=None, **cfg_extra) -> TrainLoop:
    """A tiny loop whose checkpoints go to ckpt (the running checkpoint of a run with this fingerprint)."""
    torch.manual_seed(0)
    data = torch.rand(48, 1, 28, 28) * 2 - 1
    config = TrainConfig(**{**CFG, "epochs": epochs, **cfg_extra})
    return TrainLoop(tiny_unet(), Diffusion(linear_betas(100)), data, config,
                     saver=Checkpointer(ckpt, fingerprint or {"run": 1}))


def resume(loop: TrainLoop) -> bool:
    return loop.saver.resume(loop)


def test_killed_then_resumed_run_ends_with_the_same_weights(tmp_path):
    straight = make_trainer(tmp_path / "a.pt", 2)
    straight.fit()
    first = make_trainer(tmp_path / "b.pt", 1)
    first.fit()  # "killed" after epoch 1: only its checkpoint survives
    resumed = make_trainer(tmp_path / "b.pt", 2)
    assert resume(resumed) and resumed.epoch == 1
    resumed.fit()
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    for name, tensor in straight.ema.module.state_dict().items():
        assert torch.equal(tensor, resumed.ema.module.state_dict()[name]), name
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]


def test_loss_goes_down(tmp_path):
    hist = make_trainer(tmp_path / "d.pt", 6).fit()
    assert hist[-1]["loss"] < hist[0]["loss"]


def test_ema_follows_its_formula(tmp_path):
    """θ̄ after three updates equals the warm-up EMA computed by hand from the three raw weight snapshots."""
    t = make_trainer(tmp_path / "g.pt", 1)
    ema = {k: v.clone() for k, v in t.model.state_dict().items()}  # AveragedModel starts as a copy
    x0 = t.data[:16]
    for n in range(3):
        t.train_step(x0)
        d = min(t.config.ema_decay, (1 + n) / (10 + n))
        for k, v in t.model.state_dict().items():
            ema[k] = ema[k] + (v - ema[k]) * (1 - d) if n > 0 else v.clone()  # the first update copies θ
    for k, v in t.ema.module.state_dict().items():
        assert torch.allclose(v, ema[k], atol=1e-6), k
    assert any(not torch.allclose(v, t.model.state_dict()[k]) for k, v in t.ema.module.state_dict().items())


def test_guide_step_keeps_the_ema_weights_of_that_step_through_a_resume(tmp_path):
    """guide_step = 2 (in epoch 1 of 3-step epochs): the checkpoints hold the EMA weights right after step 2, equal in a
    straight run and in one killed after epoch 1 and resumed for epoch 2 (which must carry them over from the
    checkpoint); load_unet(autoguidance=w) guides with them."""
    probe = make_trainer(tmp_path / "p.pt", 2)
    probe.fit()
    assert probe.step == 6  # 48 images / 16: 3 steps per epoch
    straight = make_trainer(tmp_path / "a.pt", 2, guide_step=2)
    seen = {}
    step = straight.train_step
    def spy(*a, **k):
        loss = step(*a, **k)
        if straight.step == 2:
            seen.update({n: v.clone() for n, v in straight.ema.module.state_dict().items()})
        return loss
    straight.train_step = spy
    straight.fit()
    first = make_trainer(tmp_path / "b.pt", 1, guide_step=2)
    first.fit()
    resumed = make_trainer(tmp_path / "b.pt", 2, guide_step=2)
    assert resume(resumed)
    resumed.fit()
    assert seen
    for path in (tmp_path / "a.pt", tmp_path / "b.pt"):
        guide = load_checkpoint(path)["guide"]
        assert all(torch.equal(guide[n], v) for n, v in seen.items())
        assert not all(torch.equal(guide[n], v) for n, v in load_checkpoint(path)["ema"].items())
    good = load_weights(tmp_path / "a.pt", tiny_unet())
    bad = load_weights(tmp_path / "a.pt", tiny_unet(), which="guide")
    folder = tmp_path / "model"  # the model folder a finished run writes, with the early weights beside the EMA's
    diffusion = {"T": 100, "schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "prediction": "eps",
                 "weighting": "none", "snr_gamma": 5.0}
    save_pretrained(folder, good, diffusion, sample_shape=(1, 28, 28), guide=load_checkpoint(tmp_path / "a.pt")["guide"])
    guided = load_unet(folder, diffusion, torch.device("cpu"), "off", autoguidance=1.5)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 90])
    with torch.no_grad():
        assert not torch.allclose(good(x, t), bad(x, t), atol=1e-4)
        assert torch.allclose(guided(x, t), 2.5 * good(x, t) - 1.5 * bad(x, t), atol=1e-5)
    with pytest.raises(ValueError, match="guide_step"):
        load_weights(tmp_path / "p.pt", tiny_unet(), which="guide")
