"""benchmarks/curve.py: a recipe trial on the quality-against-minutes curve (`python -m benchmarks.bench
--quality-vs-time --no-peer --set …` changes ours' settings on top of the CPU profile, validated like params.yaml, and
writes to a folder of its own), and how a snapshot is sampled."""
import pytest
import torch

from benchmarks.bench import load_config, parse_sets
from benchmarks.curve import trial_name
from ddpm.params import ParamError
from tests.conftest import randomize, tiny_unet
from tests.test_guidance import Unusable

SECTIONS = ["runtime", "diffusion", "model", "train_mnist", "sample"]


def test_set_values_are_yaml_and_land_on_top_of_the_profile():
    sets = parse_sets(["train_mnist.batch_size=64", "diffusion.prediction=v", "model.attention_levels=[1, 2]"])
    assert sets == {"train_mnist.batch_size": 64, "diffusion.prediction": "v", "model.attention_levels": [1, 2]}
    p = load_config("cpu", sections=SECTIONS, overrides=sets)
    assert p["train_mnist"]["batch_size"] == 64 and p["diffusion"]["prediction"] == "v"
    assert p["model"]["attention_levels"] == [1, 2] and p["model"]["patch_size"] == 2  # the profile's, kept
    assert load_config("cpu", sections=SECTIONS)["train_mnist"]["batch_size"] != 64  # nothing leaks between calls


@pytest.mark.parametrize("pair, says", [
    ("train_mnist.batch_sise=64", "--set train_mnist.batch_sise: no such key"),
    ("train_mnist.batch_size=-1", "train_mnist.batch_size"),
    ("diffusion.prediction=x0", "diffusion.prediction"),
    ("batch_size=64", "expected section.key=value"),
    ("train_mnist.batch_size", "expected section.key=value"),
])
def test_a_bad_set_is_refused_in_one_line_naming_it(pair, says):
    with pytest.raises(ParamError, match=says.replace("[", r"\[")) as e:
        load_config("cpu", sections=SECTIONS, overrides=parse_sets([pair]))
    assert "\n" not in str(e.value)


def test_a_trial_gets_its_own_folder_named_by_its_settings():
    assert trial_name(["train_mnist.batch_size=64"], [8.0], True) == "train_mnist.batch_size=64_8min_no-peer"
    assert trial_name([], [5, 10, 20], True) == "5-10-20min_no-peer"
    assert "/" not in trial_name(["model.channel_mults=[1, 2]", "x.y=../../etc"], [8], False)


def test_an_unknown_profile_is_refused_in_one_line():
    with pytest.raises(ParamError, match=r"^params.yaml: profile = 'typo': must be one of gpu, cpu"):
        load_config("typo", sections=SECTIONS)


def test_the_curve_samples_ours_as_the_sample_stage_does():
    """benchmarks.curve: a snapshot is autoguided by its early weights when sample.autoguidance > 0, plain before
    train_mnist.guide_step has passed (no early weights yet) or at w = 0; the sampler label says which."""
    from benchmarks.curve import guided
    good, early = randomize(tiny_unet()), randomize(tiny_unet())
    bad = tiny_unet()
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 90])
    net, label = guided(good, bad, early.state_dict(), 1.5)
    with torch.no_grad():
        assert torch.allclose(net(x, t), 2.5 * good(x, t) - 1.5 * early(x, t), atol=1e-5)
    assert label == ", autoguidance w = 1.5"
    assert guided(good, Unusable(), None, 1.5) == (good, "")
    assert guided(good, Unusable(), early.state_dict(), 0.0) == (good, "")


def test_a_bad_number_of_network_evaluations_is_refused_before_any_training():
    from benchmarks.bench import main
    with pytest.raises(ParamError, match=r"^--nfe 0: the peers' network evaluations per sample must be ≥ 1$"):
        main(["--quality-vs-time", "--nfe", "0"])
