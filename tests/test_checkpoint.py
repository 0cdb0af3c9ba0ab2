"""ddpm/checkpoint.py: checkpoints that verify, the previous copy, fingerprints and what a run resumes from."""
import pytest
import torch

from ddpm.checkpoint import (CheckpointError, differing, fingerprint, load_checkpoint, load_weights, previous_path,
                             save_checkpoint)
from ddpm.device import native_bf16
from tests.conftest import tiny_unet
from tests.test_train import make_trainer, resume


def test_a_damaged_checkpoint_is_named_and_the_previous_one_resumes(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    make_trainer(ckpt, 2).fit()  # two saves: checkpoint.pt (epoch 2) and checkpoint.prev.pt (epoch 1)
    assert load_checkpoint(ckpt)["epoch"] == 2 and load_checkpoint(previous_path(ckpt))["epoch"] == 1

    record = torch.load(ckpt, weights_only=True)
    record["payload"][100] ^= 1
    torch.save(record, ckpt)  # one bit flipped, sha256 kept
    with pytest.raises(CheckpointError, match="fails its sha256 check"):
        load_checkpoint(ckpt)
    resumed = make_trainer(ckpt, 3)
    assert resume(resumed) and resumed.epoch == 1  # fell back to the previous checkpoint

    ckpt.write_bytes(previous_path(ckpt).read_bytes()[:5000])  # truncated
    with pytest.raises(CheckpointError, match="truncated or not a checkpoint"):
        load_checkpoint(ckpt)
    previous_path(ckpt).unlink()
    with pytest.raises(CheckpointError, match="truncated"):  # nothing to fall back to: stop, do not overwrite
        resume(make_trainer(ckpt, 3))

    save_checkpoint({"epoch": 0}, ckpt)
    record = torch.load(ckpt, weights_only=True)
    torch.save(dict(record, version=1), ckpt)
    with pytest.raises(CheckpointError, match="format version 1; this code reads version 2"):
        load_checkpoint(ckpt)
    torch.save({"model": {}}, ckpt)
    with pytest.raises(CheckpointError, match="not a ddpm-checkpoint file"):
        load_checkpoint(ckpt)


def test_amp_auto_and_off_are_the_same_settings_where_bf16_is_not_native():
    auto_dtype = torch.bfloat16 if native_bf16(torch.device("cpu")) else None
    a = fingerprint({"recipe": {"lr": 1e-3, "amp": str(auto_dtype)}})
    off = fingerprint({"recipe": {"lr": 1e-3, "amp": str(None)}})
    assert (a == off) == (auto_dtype is None)


def test_a_checkpoint_from_before_a_key_existed_resumes_at_its_old_behaviour(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    make_trainer(ckpt, 1, fingerprint=fingerprint({"model": {"channels": 8}})).fit()  # 0.3: no model.conditioning
    later = make_trainer(ckpt, 2, fingerprint=fingerprint({"model": {"channels": 8, "conditioning": "add"}}))
    assert resume(later) and later.epoch == 1  # "add" is what 0.3 did: the finished epoch is kept
    other = make_trainer(ckpt, 2, fingerprint=fingerprint({"model": {"channels": 8, "conditioning": "scale_shift"}}))
    assert not resume(other)  # another architecture: not resumed


def test_a_damaged_latest_checkpoint_never_replaces_the_good_previous_one(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    make_trainer(ckpt, 2).fit()
    ckpt.write_bytes(ckpt.read_bytes()[:3000])  # truncated: training falls back to .prev (epoch 1)
    resumed = make_trainer(ckpt, 2)
    assert resume(resumed) and resumed.epoch == 1
    resumed.fit()  # one save (epoch 2): the truncated file must not have become .prev; the good epoch 1 stays
    assert load_checkpoint(ckpt)["epoch"] == 2 and load_checkpoint(previous_path(ckpt))["epoch"] == 1


def test_a_checkpoint_with_other_settings_is_not_resumed(tmp_path):
    make_trainer(tmp_path / "c.pt", 1).fit()
    other = make_trainer(tmp_path / "c.pt", 2, fingerprint={"run": 2})
    assert not resume(other) and other.epoch == 0


def test_load_weights_rejects_another_architecture(tmp_path):
    make_trainer(tmp_path / "f.pt", 1).fit()
    load_weights(tmp_path / "f.pt", tiny_unet())
    with pytest.raises(ValueError, match="do not fit the model"):
        load_weights(tmp_path / "f.pt", tiny_unet(channels=16, groups=8))


def test_guide_step_0_leaves_the_fingerprint_of_older_checkpoints():
    """0.5 added train_mnist.guide_step: at 0 (no snapshot) a checkpoint of 0.4 still resumes; > 0 is another run."""
    before = fingerprint({"recipe": {"lr": 1e-3}})
    assert fingerprint({"recipe": {"lr": 1e-3, "guide_step": 0}}) == before
    assert fingerprint({"recipe": {"lr": 1e-3, "guide_step": 200}}) != before


def test_a_refused_resume_names_the_settings_that_differ_by_their_params_keys():
    old = fingerprint({"recipe": {"lr": 2e-4, "epochs": 3}, "model": {"channels": 32}})
    new = fingerprint({"recipe": {"lr": 1e-4, "epochs": 9}, "model": {"channels": 32}})
    assert differing(old, new, {"recipe": "train_mnist"}) == "train_mnist.lr 0.0002 → 0.0001"  # epochs: volatile
    assert differing([1], new) == "a checkpoint of an older release"
    merged = {"recipe": {"lr": "train_mnist_cfg", "warmup_steps": "train_mnist"}}  # a recipe of two sections
    old = fingerprint({"recipe": {"lr": 2e-4, "warmup_steps": 10}})
    assert differing(old, fingerprint({"recipe": {"lr": 1e-4, "warmup_steps": 20}}), merged) == \
        "train_mnist_cfg.lr 0.0002 → 0.0001, train_mnist.warmup_steps 10 → 20"
