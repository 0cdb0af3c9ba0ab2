"""params.yaml: the schema, one section per stage, runtime overrides, YAML 1.2 as DVC reads it."""
import copy
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser  # DVC's -S grammar

from ddpm.params import (OPTIONAL, STAGE_SECTIONS, ParamError, load, load_stage, read_yaml, stage_sections, validate,
                         validate_all)
from ddpm.profile import profile_args
from tests.conftest import write_yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = read_yaml(ROOT / "params.yaml")
ALL = list(PARAMS)


def with_value(key: str, value):
    p = copy.deepcopy(PARAMS)
    section, name = key.split(".")
    p[section][name] = value
    return p


def test_the_shipped_params_and_cpu_profile_are_valid():
    validate_all(PARAMS)
    profile = read_yaml(ROOT / "profiles" / "cpu.yaml")
    p = copy.deepcopy(PARAMS)
    assert profile.pop("targets") == ["report"]
    for key, value in profile.items():
        section, name = key.split(".")
        assert name in p[section], key
        p[section][name] = value
    validate_all(p)


def test_the_cpu_profile_reaches_dvc_exp_run_as_its_values():
    """Each -S argument parses in DVC's override grammar (Hydra's) back to the profile's value, dict rows included."""
    overrides = read_yaml(ROOT / "profiles" / "cpu.yaml")
    targets = overrides.pop("targets")
    args = profile_args("cpu", ROOT / "profiles")
    assert args[len(overrides):] == targets
    parsed = OverridesParser.create().parse_overrides([arg.removeprefix("-S=") for arg in args[:len(overrides)]])
    assert {o.key_or_group: o.value() for o in parsed} == overrides


def test_every_stage_has_its_own_section_and_dvc_yaml_names_match():
    stages = set(read_yaml(ROOT / "dvc.yaml")["stages"])
    assert stages == set(STAGE_SECTIONS)
    for stage in stages:
        assert stage_sections(stage)[0] == stage or stage == "report_celeba"
    assert sum("device" in section for section in PARAMS.values()) == 1  # runtime only


@pytest.mark.parametrize("key, value, words", [
    ("train_mnist.epochs", -1, "train_mnist.epochs = -1: must be an integer in [1, 100000]"),
    ("diffusion.beta_end", 0.00005, "diffusion.beta_end = 5e-05 must be > diffusion.beta_start"),
    ("diffusion.T", 1, "diffusion.T = 1: must be an integer in [2, 100000]"),
    ("diffusion.schedule", "sigmoid", "diffusion.schedule = 'sigmoid': must be one of 'linear', 'cosine'"),
    ("train_mnist.lr", "fast", "train_mnist.lr = 'fast'"),
    ("model.attention_levels", [5], "model.attention_levels = [5]"),
    ("sweep_mnist_cfg.steps", 5000, "sweep_mnist_cfg.steps = 5000: must be ≤ diffusion.T"),
    ("sample.steps", 50, "sample.steps = 50: the ancestral sampler visits all diffusion.T = 1000 steps"),
    ("compare_samplers.rows", [{"sampler": "ddim", "steps": 2000, "eta": 0.0, "weights": "ema"}],
     "compare_samplers.rows[0].steps = 2000: must be ≤ diffusion.T"),
    ("compare_samplers.rows", [{"sampler": "euler", "steps": 20, "eta": 0.0, "weights": "ema"}],
     "compare_samplers.rows[0].sampler = 'euler'"),
    ("compare_samplers.rows", [{"sampler": "ddim", "steps": 20, "eta": 0.0, "weights": "ema", "w": 1.0}],
     "compare_samplers.rows[0] = {'sampler': 'ddim', 'steps': 20, 'eta': 0.0, 'weights': 'ema', 'w': 1.0}: must have"),
    ("compare_samplers.rows", [{"sampler": "ddim", "steps": 20, "eta": 0.0, "weights": "ema", "autoguidance": 1.0}],
     "compare_samplers.rows[0].autoguidance = 1.0 needs train_mnist.guide_step > 0"),
    ("sample.autoguidance", 1.5, "sample.autoguidance = 1.5 needs train_mnist.guide_step > 0"),
    ("sample.autoguidance", -1, "sample.autoguidance = -1: must be"),
    ("runtime.amp", "fp8", "runtime.amp = 'fp8'"),
    ("train_mnist.epochs", True, "train_mnist.epochs = True"),
    ("download_celeba.download", 1, "download_celeba.download = 1: must be one of True, False"),
])
def test_bad_values_name_the_key_and_the_range(key, value, words):
    with pytest.raises(ParamError) as e:
        validate(with_value(key, value), ALL)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_complete_route_accepts_exactly_the_swept_gradient_routes():
    """params.py spells completion.GRADIENT_ROUTES out (not imported, so a change to completion.py does not re-run
    every stage): they must stay the same list."""
    from ddpm.completion import GRADIENT_ROUTES
    for route in GRADIENT_ROUTES:
        validate(with_value("complete.route", route), ALL)
    with pytest.raises(ParamError, match="complete.route = 'replace': must be one of 'xt', 'mean', 'mcg'"):
        validate(with_value("complete.route", "replace"), ALL)


def test_unknown_and_missing_keys():
    p = with_value("train_mnist.epochz", 3)
    with pytest.raises(ParamError, match="train_mnist.epochz is not a known key"):
        validate(p, ["train_mnist"])
    del p["train_mnist"]["epochz"], p["train_mnist"]["lr"]
    with pytest.raises(ParamError, match="train_mnist.lr is missing"):
        validate(p, ["train_mnist"])


def test_a_stage_overrides_runtime_and_reads_only_its_sections(tmp_path):
    p = with_value("sample.nproc", 2)
    write_yaml(p, tmp_path / "params.yaml")
    got = load_stage("sample", tmp_path / "params.yaml")
    assert got["sample"]["nproc"] == 2 and got["sample"]["device"] == "auto" and got["runtime"]["nproc"] == 1
    assert set(got) == {"sample", "runtime", "diffusion", "model"}
    assert "nproc" in OPTIONAL["sample"] and "download_mnist" not in OPTIONAL
    with pytest.raises(ParamError, match="download_mnist.nproc is not a known key"):
        validate(with_value("download_mnist.nproc", 2), ["download_mnist"])


@pytest.mark.parametrize("text, value", [("1e-5", 1e-5), ("1E5", 1e5), (".5", 0.5), ("-.5e-3", -5e-4), ("2.0e-4", 2e-4)])
def test_floats_are_read_as_yaml_1_2_like_dvc(tmp_path, text, value):
    (tmp_path / "p.yaml").write_text(f"x: {text}\n")
    assert read_yaml(tmp_path / "p.yaml")["x"] == value


def test_integral_floats_count_as_integers(tmp_path):
    p = with_value("train_mnist.epochs", 1e1)  # DVC writes -S train_mnist.epochs=1e1 as 10.0
    assert validate(p, ["train_mnist"])["train_mnist"]["epochs"] == 10
    with pytest.raises(ParamError, match="train_mnist.epochs = 1.5"):
        validate(with_value("train_mnist.epochs", 1.5), ["train_mnist"])


def test_a_stage_with_bad_params_stops_with_one_line_before_work(tmp_path):
    write_yaml(with_value("train_mnist.epochs", -1), tmp_path / "params.yaml")
    r = subprocess.run([sys.executable, str(ROOT / "stages" / "train_mnist.py")], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip() == "error: params.yaml: train_mnist.epochs = -1: must be an integer in [1, 100000]"
    assert list(tmp_path.iterdir()) == [tmp_path / "params.yaml"]  # nothing was started or written


def test_load_reports_a_broken_file(tmp_path):
    (tmp_path / "params.yaml").write_text("train_mnist: [1, 2\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        load(["train_mnist"], tmp_path / "params.yaml")
