"""Ordinary mistakes and faults, one test each: nothing finished is lost, nothing wrong is written silently, and
every error is one line that names the key or file and what to do."""
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddpm import Diffusion, linear_betas, sample
from ddpm.checkpoint import check_diffusion, save_checkpoint
from ddpm.pretrained import load_unet, save_pretrained
from ddpm.context import _saved_chunk
from ddpm.data import DataError, download_mnist, load_mnist
from ddpm.device import check_training_memory
from ddpm.io import NUMBER, read_json, save_json, save_text
from ddpm.metrics import fid_clf
from ddpm.params import ParamError, read_yaml, validate
from ddpm.unet import UNet
from tests.conftest import tiny_unet, write_yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = read_yaml(ROOT / "params.yaml")
SECTIONS = [name for name in PARAMS if name != "profile"]


# -- work that is lost -------------------------------------------------------------------------------------------


def test_a_damaged_source_does_not_overwrite_good_mnist_files(tmp_path, mnist_dir):
    out = tmp_path / "raw"
    download_mnist(out, [f"dir:{mnist_dir}"])
    good = (out / "t10k-images-idx3-ubyte").read_bytes()
    bad = tmp_path / "bad"
    shutil.copytree(mnist_dir, bad)
    (bad / "t10k-images-idx3-ubyte").write_bytes(good[:5000] + bytes([good[5000] ^ 0xFF]) + good[5001:])
    with pytest.raises(DataError, match="could not be fetched from any source"):
        download_mnist(out, [f"dir:{bad}"])
    assert (out / "t10k-images-idx3-ubyte").read_bytes() == good


def test_a_judge_below_min_accuracy_leaves_the_last_judge_in_place(tmp_path, mnist_dir):
    p = read_yaml(ROOT / "params.yaml")
    p["judge"].update(epochs=1, max_images=300, holdout=50, min_accuracy=0.9999)
    write_yaml(p, tmp_path / "params.yaml")
    (tmp_path / "data/mnist").mkdir(parents=True)
    shutil.copytree(mnist_dir, tmp_path / "data/mnist/raw")
    judge = tmp_path / "data/mnist/judge/judge.pt"
    judge.parent.mkdir(parents=True)
    judge.write_bytes(b"the last good judge")
    r = subprocess.run([sys.executable, str(ROOT / "stages/judge.py")], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1 and "judge.min_accuracy = 0.9999" in r.stderr.strip().splitlines()[-1]
    assert judge.read_bytes() == b"the last good judge" and not (tmp_path / "reports/judge/metrics.json").exists()


# -- results that are wrong without a word --------------------------------------------------------------------------
def test_sampling_refuses_a_checkpoint_of_other_diffusion_settings(tmp_path):
    model_cfg = dict(channels=8, channel_mults=[1, 2], num_res_blocks=1, attention_levels=[1], heads=2, dropout=0.0,
                     groups=4, patch_size=1)
    trained = {"T": 50, "schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "prediction": "eps",
               "weighting": "none", "snr_gamma": 5.0}
    model = UNet.from_params(model_cfg, 1, 50)
    save_pretrained(tmp_path / "model", model, trained, sample_shape=(1, 28, 28))
    load_unet(tmp_path / "model", trained, torch.device("cpu"), "off")
    with pytest.raises(ValueError, match=r"trained with diffusion.schedule = 'linear', but params.yaml has "
                                         r"diffusion.schedule = 'cosine'"):
        load_unet(tmp_path / "model", {**trained, "schedule": "cosine"}, torch.device("cpu"), "off")
    with pytest.raises(ValueError, match="trained with diffusion.T = 50, but params.yaml has diffusion.T = 1000"):
        check_diffusion(tmp_path / "c.pt", {"fingerprint": {"diffusion": trained}}, {**trained, "T": 1000})


def test_sampling_that_diverges_is_an_error_not_nan_images():
    d = Diffusion(linear_betas(20))
    with pytest.raises(FloatingPointError, match="2 of 2 images have NaN"):
        sample(d, lambda x, t: torch.full_like(x, float("nan")), 2, (1, 4, 4), sampler="ddim", steps=3, device="cpu")


@pytest.mark.parametrize("key, value, words", [
    ("complete.scale", 1e300, "complete.scale = 1e+300"), ("sample.eta", 1e300, "sample.eta = 1e+300"),
    ("sweep_mnist_cfg.guidance_scales", [1e308], "sweep_mnist_cfg.guidance_scales"),
    ("train_mnist.seed", 10**30, "train_mnist.seed = 1000000000000000000000000000000"),
])
def test_bounds_where_a_bound_is_known(key, value, words):
    p = json.loads(json.dumps(PARAMS))
    section, name = key.split(".")
    p[section][name] = value
    with pytest.raises(ParamError, match=words.replace("+", r"\+").replace("[", r"\[")):
        validate(p, SECTIONS)


def test_json_is_strict(tmp_path):
    with pytest.raises(FloatingPointError, match=r"x.json: rows\[1\].mse_visible = nan is not a finite number"):
        save_json({"rows": [{"mse_visible": 0.1}, {"mse_visible": float("nan")}]}, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
    (tmp_path / "y.json").write_text('{"accuracy": NaN}')
    with pytest.raises(ValueError, match="y.json: sweep table is not valid JSON"):
        read_json(tmp_path / "y.json", "sweep table")


def test_stages_verify_mnist_before_reading_it(tmp_path, mnist_dir):
    shutil.copytree(mnist_dir, tmp_path / "raw")
    path = tmp_path / "raw" / "t10k-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[16:] = bytes(255 - b for b in data[16:])  # inverted in place: same size, same header
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: MD5 .* ≠ canonical"):
        load_mnist(tmp_path / "raw", "test")


# -- errors a user can act on ---------------------------------------------------------------------------------------
def test_one_line_errors_instead_of_library_errors(tmp_path):
    with pytest.raises(ValueError, match="fid_clf needs at least 2 images"):
        fid_clf(torch.randn(1, 64), torch.randn(50, 64))
    p = json.loads(json.dumps(PARAMS))
    p["compare_samplers"]["rows"] = []
    with pytest.raises(ParamError, match="compare_samplers.rows = \\[\\]: must be a non-empty list of rows"):
        validate(p, SECTIONS)
    p = json.loads(json.dumps(PARAMS))
    p["sweep_mnist_cfg"].update(n_per_prompt=1, prompts=["a handwritten 1"])
    with pytest.raises(ParamError, match="sweep_mnist_cfg.n_per_prompt = 1 with 1 prompt"):
        validate(p, SECTIONS)
    (tmp_path / "t.json").write_text('[{"route": "xt", "scale": "high"}]')
    with pytest.raises(ValueError, match="t.json: sweep table is malformed"):
        read_json(tmp_path / "t.json", "sweep table", {"route": str, "scale": NUMBER})
    (tmp_path / "e.json").write_text("")
    with pytest.raises(ValueError, match="e.json: sweep table is not valid JSON"):
        read_json(tmp_path / "e.json", "sweep table")


def test_a_damaged_or_foreign_clip_chunk_is_recomputed(tmp_path):
    key = {"model": "m"}
    torch.save([1, 2, 3], tmp_path / "list.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 cut short")
    torch.save({"key": key, "emb": torch.zeros(3, 4)}, tmp_path / "wrong_shape.pt")
    torch.save({"key": key, "emb": torch.zeros(5, 4)}, tmp_path / "good.pt")
    for name in ("list.pt", "cut.pt", "wrong_shape.pt", "missing.pt"):
        assert _saved_chunk(tmp_path / name, key, 5, 4) is None, name
    assert _saved_chunk(tmp_path / "good.pt", key, 5, 4).shape == (5, 4)


# -- resources ------------------------------------------------------------------------------------------------------
def test_the_free_disk_check_counts_the_whole_file(tmp_path, monkeypatch):
    state = {"w": torch.randn(200_000)}
    save_checkpoint(state, tmp_path / "probe.pt")
    size = (tmp_path / "probe.pt").stat().st_size
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 10**12, size + 2**20 - 1))
    with pytest.raises(OSError, match="writing the checkpoint needs"):
        save_checkpoint(state, tmp_path / "checkpoint.pt")


def test_a_full_disk_names_the_file(tmp_path, monkeypatch):
    def full(*_, **__):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match=r"report.md: no space left on the device while writing it; free some space"):
        save_text("hello", tmp_path / "report.md")


def test_what_cannot_fit_in_memory_is_refused_before_work():
    cfg = dict(channels=1024, channel_mults=[16, 16, 16, 16], num_res_blocks=8, attention_levels=[], heads=4,
               dropout=0.0, groups=32, patch_size=1)  # about 500 billion parameters: measured on the meta device, never built
    with pytest.raises(MemoryError, match=r"training 4\d{5}\.\d M parameters .* lower train_mnist.batch_size"):
        check_training_memory(lambda: UNet.from_params(cfg, 1, 1000), (1, 28, 28), 128, torch.device("cpu"),
                              "train_mnist.batch_size")
    with pytest.raises(MemoryError, match="batches of 1000000"):
        check_training_memory(lambda: tiny_unet(), (1, 28, 28), 1_000_000, torch.device("cpu"), "train_mnist.batch_size")
    check_training_memory(lambda: tiny_unet(), (1, 28, 28), 128, torch.device("cpu"), "train_mnist.batch_size")


def test_outputs_keep_the_mode_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        save_json({"a": 1}, tmp_path / "a.json")
        save_checkpoint({"a": 1}, tmp_path / "c.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o644


def test_the_fuzzer_finds_no_traceback_and_no_nan(tmp_path, mnist_dir):
    """A short run of tests/fuzz_stages.py (python -m tests.fuzz_stages --n 200 runs the long one)."""
    from tests.fuzz_stages import build, fuzz

    project = build(tmp_path, mnist_dir)
    log = tmp_path / "fuzz.log"
    with open(log, "w") as f:
        failures = fuzz(project, n=40, seed=1, log=f)
    assert failures == [], "\n".join(failures)
