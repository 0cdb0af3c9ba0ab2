"""The quality-against-minutes benchmark's peers (benchmarks/peer*.py) and their harness (benchmarks/contender.py):
each library trains and samples through its own API, every sampler at the same network evaluations, the learning rate
ends at the budget, and every figure carries its standard error."""
import math

import pytest
import torch

from benchmarks.contender import TUNED, clock_cosine, scored
from ddpm.judge import JudgeOutput

pytest.importorskip("diffusers")
pytest.importorskip("denoising_diffusion_pytorch")
pytest.importorskip("flow_matching")

MODEL = dict(channels=8, channel_mults=[1, 2, 2], num_res_blocks=1, attention_levels=[2], heads=2, dropout=0.0,
             groups=4, patch_size=1, conditioning="add")


def peers():
    from benchmarks.curve import PEERS
    return PEERS


def test_the_learning_rate_warms_up_then_ends_at_zero_exactly_at_the_budget():
    assert clock_cosine(0, 0.0, 10) == pytest.approx(0.1)
    assert clock_cosine(9, 0.0, 10) == pytest.approx(1.0)
    assert clock_cosine(500, 0.5, 10) == pytest.approx(0.5)
    assert clock_cosine(500, 0.999, 10) > 0 and clock_cosine(500, 1.0, 10) == pytest.approx(0.0, abs=1e-12)
    assert clock_cosine(500, 1.7, 10) == pytest.approx(0.0, abs=1e-12)  # past the budget: held at 0, never climbing back


@pytest.mark.parametrize("key", ["diffusers-tuned", "lucidrains", "flow-matching", "diffusers-documented"])
def test_each_peer_trains_and_samples_at_the_same_network_evaluations(key):
    """Two optimizer steps that change the weights, the learning rate set by the training clock, and every sampler
    at nfe network evaluations drawing finite images in [−1, 1], reproducible from the seed."""
    torch.manual_seed(0)
    data = torch.rand(12, 1, 28, 28) * 2 - 1
    peer = peers()[key](MODEL, data, budget_s=60.0, seed=0, nfe=4)
    before = {k: v.clone() for k, v in peer.model.state_dict().items()}
    losses = [peer.train_step(clock_s=c) for c in (0.0, 30.0)]
    assert all(math.isfinite(v) for v in losses) and peer.step == 2
    assert any(not torch.equal(before[k], v) for k, v in peer.model.state_dict().items())
    assert peer.opt.param_groups[0]["lr"] == pytest.approx(
        peer.recipe["lr"] * clock_cosine(1, 0.5, peer.recipe["warmup_steps"]))
    samplers = peer.samplers()
    assert samplers and set(samplers.values()) == {4}, samplers
    weights = peer.ema_weights()
    for name in samplers:
        images = peer.sample(weights, name, 3, seed=5)
        assert images.shape == (3, 1, 28, 28) and torch.isfinite(images).all(), name
        assert images.min() >= -1 and images.max() <= 1, name
        assert torch.allclose(images, peer.sample(weights, name, 3, seed=5)), f"{name}: not reproducible"


def test_the_tuned_peers_take_ours_values_and_the_documented_one_its_example():
    from benchmarks.peer import DOCUMENTED
    p = peers()
    for key in ("diffusers-tuned", "lucidrains"):
        assert {k: p[key].recipe[k] for k in TUNED} == TUNED and "0 trials" in p[key].tuning
    # the flow's own trials kept ours' values and chose logit-normal t; its rows say they were its own
    flow = p["flow-matching"]
    assert {k: flow.recipe[k] for k in TUNED} == TUNED and flow.recipe["time_sampling"] == "logit-normal"
    assert flow.tuning == "6 trials of its own (docs/benchmark.md)"
    assert p["diffusers-documented"].recipe is DOCUMENTED and DOCUMENTED["batch_size"] == 16
    assert not p["diffusers-documented"].amp  # fp32, as the example's --mixed_precision default


def test_the_diffusers_ddim_re_derives_eps_from_the_clipped_x0():
    """0.7's DDIM rows read 0.000: diffusers' DDIMScheduler inherits clip_sample=True from the DDPM config and then
    mixes the clipped x̂₀ with the unclipped ε. The tuned peer's DDIM re-derives ε, as ours does."""
    from benchmarks.peer import DiffusersTuned
    peer = DiffusersTuned(MODEL, torch.zeros(4, 1, 28, 28), 60.0, 0, nfe=4)
    scheduler, kwargs = peer.scheduler_for("ddim 4 steps, η = 1", 4)
    assert scheduler.config.clip_sample and kwargs == {"eta": 1.0, "use_clipped_model_output": True}


def test_figures_carry_standard_errors():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(4 * torch.randn(400, 10, generator=g), 1)
    features = torch.randn(400, 16, generator=g)
    reference = torch.randn(500, 16, generator=g) + 0.3
    out = scored(JudgeOutput(probs=probs, features=features), reference, floor_fid=2.0)
    p = out["recognizable"]
    assert out["recognizable_se"] == pytest.approx(math.sqrt(p * (1 - p) / 400))
    assert 0 < out["fid_clf_se"] < out["fid_clf"] and out["coverage_se"] > 0
    assert out["fid_ratio"] == pytest.approx(out["fid_clf"] / 2) and out["fid_ratio_se"] == pytest.approx(out["fid_clf_se"] / 2)


def test_the_table_states_every_rows_cost():
    from benchmarks.curve import markdown
    row = {"recipe": "peer", "sampler": "ddpm 100 steps", "nfe": 100, "minutes": 5, "trained_minutes": 5.0, "steps": 40,
           "images": 5120, "lr_at_end": 0.0, "tuning": "0 trials", "fid_ratio": 3.0, "fid_ratio_se": 0.1,
           "recognizable": 0.5, "recognizable_se": 0.016, "coverage": 2.2, "sample_seconds": 12.0}
    md = markdown({"n": 1000, "screen_n": 200, "floor": {"fid_clf": 5.0, "recognizable": 0.97, "coverage": 2.29},
                   "rows": [row]}, "header")
    assert "| NFE |" in md and "| lr at end |" in md and "| images seen |" in md and "| sampling s |" in md
    assert "| 0.00 | 0 trials | 3.00 ± 0.10 | 0.500 ± 0.016 |" in md


def test_a_peer_trial_changes_only_its_recipe_and_its_rows_say_so():
    """`--peer-set flow-matching.lr=4e-3`: a subclass with the change over the recipe (YAML's 4e-3 is a string: read as
    the float it means), its tuning label naming it, the registered peer untouched; uniform t trains."""
    from benchmarks.curve import PEERS, peer_trial
    registered = dict(PEERS["flow-matching"].recipe)
    cls = peer_trial("flow-matching", {"lr": "4e-3", "time_sampling": "uniform", "batch_size": 4})
    assert cls.recipe == {**registered, "lr": 0.004, "time_sampling": "uniform", "batch_size": 4}
    assert cls.tuning == "trial: lr=0.004, time_sampling=uniform, batch_size=4"
    assert PEERS["flow-matching"].recipe == registered and peer_trial("lucidrains", {}) is PEERS["lucidrains"]
    peer = cls(MODEL, torch.rand(12, 1, 28, 28) * 2 - 1, budget_s=60.0, seed=0, nfe=2)
    assert math.isfinite(peer.train_step(clock_s=0.0)) and peer.opt.param_groups[0]["lr"] == pytest.approx(
        0.004 * clock_cosine(0, 0.0, registered["warmup_steps"]))


@pytest.mark.parametrize("key, changes, says", [
    ("flow-matching", {"lr_peak": 0.1}, "--peer-set flow-matching.lr_peak: not in flow-matching's recipe; its keys: "),
    ("lucidrains", {"batch_size": 0.5}, "--peer-set lucidrains.batch_size=0.5: expected int, like its default "),
    ("diffusers-tuned", {"lr": "fast"}, "--peer-set diffusers-tuned.lr='fast': expected float"),
    ("flow-matching", {"ema_decay": True}, "--peer-set flow-matching.ema_decay=True: expected float"),
])
def test_a_bad_peer_setting_is_refused_in_one_line_naming_it(key, changes, says):
    from benchmarks.curve import peer_trial
    from ddpm.params import ParamError
    with pytest.raises(ParamError, match="^" + says.replace(".", r"\.")) as e:
        peer_trial(key, changes)
    assert "\n" not in str(e.value)


def test_an_unknown_time_sampling_is_refused_before_training():
    from benchmarks.curve import peer_trial
    from ddpm.params import ParamError
    cls = peer_trial("flow-matching", {"time_sampling": "beta"})
    with pytest.raises(ParamError, match="^flow-matching.time_sampling = 'beta': must be one of uniform, logit-normal$"):
        cls(MODEL, torch.zeros(4, 1, 28, 28), 60.0, 0, nfe=2)


@pytest.mark.parametrize("argv, says", [
    (["--peers", "flow-matching", "--peer-set", "lucidrains.lr=0.001"],
     r"^--peer-set lucidrains.lr: lucidrains is not among the peers trained \(--peers flow-matching\)$"),
    (["--no-ours", "--no-peer"], "^--no-ours with --no-peer: nothing to train; drop one of them$"),
    (["--peer-set", "lr=0.001"], "^--peer-set lr=0.001: expected peer.key=value, e.g. flow-matching.lr=0.004$"),
])
def test_the_command_line_refuses_a_peer_trial_it_cannot_run_before_any_training(argv, says):
    from benchmarks.bench import main
    from ddpm.params import ParamError
    with pytest.raises(ParamError, match=says):
        main(["--quality-vs-time", *argv])
