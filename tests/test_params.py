"""params.yaml: the schema, one section per stage, runtime overrides, YAML 1.2 as DVC reads it."""
import copy
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser  # DVC's -S grammar

from ddpm.params import (OPTIONAL, STAGE_SECTIONS, ParamError, load, load_stage, read_yaml, stage_sections, validate,
                         validate_all)
from tests.conftest import write_yaml

ROOT = Path(__file__).resolve().parents[1]
CELEBA = read_yaml(ROOT / "celeba" / "params.yaml")  # the CelebA project's own file
PARAMS = {**CELEBA, **read_yaml(ROOT / "params.yaml")}  # every section of the schema (MNIST's runtime, diffusion)
ALL = [name for name in PARAMS if name != "profile"]  # the sections


def with_value(key: str, value):
    p = copy.deepcopy(PARAMS)
    section, name = key.split(".")
    p[section][name] = value
    return p


def test_the_shipped_params_are_valid_under_every_profile():
    validate_all(CELEBA)
    gpu, cpu = (validate_all({**read_yaml(ROOT / "params.yaml"), "profile": name}) for name in ("gpu", "cpu"))
    assert PARAMS["profile"] == "gpu" and gpu != cpu
    assert cpu["model"]["patch_size"] == 2 and gpu["model"]["patch_size"] == 1 and cpu["judge"] == gpu["judge"]


def test_a_profile_picks_its_values_and_a_plain_value_applies_to_every_profile():
    p = {**copy.deepcopy(PARAMS), "profile": "cpu"}
    assert validate(p, ["train_mnist"])["train_mnist"]["lr"] == 0.002
    p["train_mnist"]["lr"] = 0.01  # as `dvc exp run -S train_mnist.lr=0.01` writes it
    assert validate(p, ["train_mnist"])["train_mnist"]["lr"] == 0.01
    p["train_mnist"]["lr"] = {"gpu": 0.0002}  # no value for the chosen profile
    with pytest.raises(ParamError, match=r"train_mnist.lr = .* has no value for profile 'cpu'; add one"):
        validate(p, ["train_mnist"])
    with pytest.raises(ParamError, match="profile = 'laptop': must be one of gpu, cpu"):
        validate({**PARAMS, "profile": "laptop"}, ["judge"])


def test_profile_choice_and_per_profile_values_parse_in_dvcs_override_grammar():
    """`-S profile=cpu`, `-S train_mnist.lr=0.01` and `-S train_mnist.lr.cpu=0.01` are plain Hydra overrides."""
    parsed = OverridesParser.create().parse_overrides(["profile=cpu", "train_mnist.lr=0.01", "train_mnist.lr.cpu=0.01"])
    assert [(o.key_or_group, o.value()) for o in parsed] == [("profile", "cpu"), ("train_mnist.lr", 0.01),
                                                              ("train_mnist.lr.cpu", 0.01)]


def test_every_stage_has_its_own_section_and_dvc_yaml_names_match():
    stages = set(read_yaml(ROOT / "dvc.yaml")["stages"]) | set(read_yaml(ROOT / "celeba" / "dvc.yaml")["stages"])
    assert stages == set(STAGE_SECTIONS)
    for stage in stages:
        assert stage_sections(stage)[0] == stage or stage == "report_celeba"
    assert sum("device" in section for section in PARAMS.values()) == 1  # runtime only


@pytest.mark.parametrize("key, value, words", [
    ("train_mnist.epochs", -1, "train_mnist.epochs = -1: must be an integer in [1, 100000]"),
    ("diffusion.beta_end", 0.00005, "diffusion.beta_start = 0.0001, beta_end = 5e-05: need 0 < beta_start < beta_end < 1"),
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
    assert set(got) == {"sample", "runtime", "diffusion"}  # the network comes from the model folder
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
