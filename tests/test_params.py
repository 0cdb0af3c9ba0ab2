import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ddpm.params import ParamError, load, validate

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
ALL = list(PARAMS)


def with_value(key: str, value):
    p = yaml.safe_load(yaml.safe_dump(PARAMS))
    section, name = key.split(".")
    p[section][name] = value
    return p


def test_the_shipped_params_and_cpu_profile_are_valid():
    validate(PARAMS, ALL)
    profile = yaml.safe_load((ROOT / "profiles" / "cpu.yaml").read_text())
    p = yaml.safe_load(yaml.safe_dump(PARAMS))
    assert profile.pop("targets") == ["report"]
    for key, value in profile.items():
        section, name = key.split(".")
        assert name in p[section], key
        p[section][name] = value
    validate(p, ALL)


@pytest.mark.parametrize("key, value, words", [
    ("train.epochs", -1, "train.epochs = -1: must be an integer in [1, 100000]"),
    ("diffusion.beta_end", 0.00005, "diffusion.beta_end = 5e-05 must be > diffusion.beta_start"),
    ("diffusion.T", 1, "diffusion.T = 1: must be an integer in [2, 100000]"),
    ("diffusion.schedule", "sigmoid", "diffusion.schedule = 'sigmoid': must be one of 'linear', 'cosine'"),
    ("train.lr", "fast", "train.lr = 'fast'"),
    ("model.attention_levels", [5], "model.attention_levels = [5]"),
    ("sample.steps", 5000, "sample.steps = 5000: must be ≤ diffusion.T"),
    ("train.amp", "fp8", "train.amp = 'fp8'"),
    ("train.epochs", True, "train.epochs = True"),
])
def test_bad_values_name_the_key_and_the_range(key, value, words):
    with pytest.raises(ParamError) as e:
        validate(with_value(key, value), ALL)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_unknown_and_missing_keys():
    p = with_value("train.epochz", 3)
    with pytest.raises(ParamError, match="train.epochz is not a known key"):
        validate(p, ["train"])
    del p["train"]["epochz"], p["train"]["lr"]
    with pytest.raises(ParamError, match="train.lr is missing"):
        validate(p, ["train"])


def test_a_stage_with_bad_params_stops_with_one_line_before_work(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value("train.epochs", -1)))
    r = subprocess.run([sys.executable, str(ROOT / "stages" / "train_mnist.py")], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip() == "error: params.yaml: train.epochs = -1: must be an integer in [1, 100000]"
    assert list(tmp_path.iterdir()) == [tmp_path / "params.yaml"]  # nothing was started or written


def test_load_reports_a_broken_file(tmp_path):
    (tmp_path / "params.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        load(["train"], tmp_path / "params.yaml")
