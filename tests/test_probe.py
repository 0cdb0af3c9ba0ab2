"""ddpm/probe.py: the quality probe scores the EMA weights' samples with the judge after every epoch."""

from ddpm.diffusion import Diffusion
from ddpm.judge import judge_images
from ddpm.metrics import fid_clf, score
from ddpm.probe import QualityProbe
from ddpm.samplers import image_generators, sample
from ddpm.schedule import linear_betas
from tests.conftest import randomize, tiny_unet
from tests.test_callbacks import Recorder, loop
from tests.test_evaluation import digits, judge  # noqa: F401  (judge: the decisive untrained judge fixture)

SAMPLING = {"sampler": "ddim", "steps": 4, "eta": 1.0}


def test_the_probe_scores_its_samples_against_the_floor_of_real_digits(judge):  # noqa: F811
    d, real, reference = Diffusion(linear_betas(100)), digits(40, seed=3), judge.features(digits(60, seed=4)).detach()
    probe = QualityProbe(d, judge, reference, real, n=8, sampling=SAMPLING, seed=11, autocast=None)
    model = randomize(tiny_unet()).eval()
    got = probe(model)
    x = sample(d, model, 8, (1, 28, 28), generator=image_generators(11, range(8), "cpu"), **SAMPLING)
    out = judge_images(judge, x)
    want = score(out.probs, out.features, reference)
    floor = fid_clf(judge_images(judge, real[:8]).features, reference)
    assert got == {**want, "fid_ratio": want["fid_clf"] / floor}
    assert probe(model) == got  # the same noise every epoch


def test_after_an_epoch_the_probe_logs_quality_and_keeps_its_latest(judge, capsys):  # noqa: F811
    run = loop(epochs=1)
    probe = QualityProbe(run.diffusion, judge, judge.features(digits(30, seed=4)).detach(), digits(20, seed=3), n=4,
                         sampling=SAMPLING, seed=1, autocast=None)
    recorder = Recorder()
    run.callbacks = [probe, recorder]
    run.fit()
    logged = [e for e in recorder.events if e[0] == "log" and e[2][0].startswith("quality/")]
    assert len(logged) == 1 and set(logged[0][2]) == {f"quality/{k}" for k in probe.latest}
    assert {"recognizable", "fid_ratio", "coverage", "minutes"} <= set(probe.latest)
    assert "epoch 1: " in capsys.readouterr().out
