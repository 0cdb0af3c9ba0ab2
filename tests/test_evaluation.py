"""Scoring with the judge (ddpm/evaluation.py): reference rows, evaluate_samples, score_samples and score_guided."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from ddpm.evaluation import evaluate_samples, reference_rows, score_guided, score_samples
from ddpm.judge import REJECT, Judge
from ddpm.metrics import fid_clf, memorization

N = 40
ROWS = {"floor_real_test", "noise", "blurred_test", "superposed_test"}


def digits(n, seed):
    """Sparse white strokes on a black (−1) background, in [−1, 1]."""
    return (torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) > 0.8).float() * 2 - 1


@pytest.fixture(scope="module")
def judge():
    """An untrained judge, made decisive: the reject class never wins and a low temperature sharpens the digits, so
    `recognizable` lands strictly between 0 and 1 on these images."""
    torch.manual_seed(0)
    judge = Judge().eval()
    with torch.no_grad():
        judge.classifier.weight.mul_(20)
        judge.classifier.bias[REJECT] = -50
        judge.temperature.fill_(0.1)
    return judge


@pytest.fixture(scope="module")
def test_set():
    return digits(2 * N + 20, seed=1)


@pytest.fixture(scope="module")
def reference(judge, test_set):
    with torch.no_grad():
        return judge.features(test_set[1::2])


def judged(judge, x):
    """Features and digit probabilities, recomputed without judge_images."""
    with torch.no_grad():
        f = judge.features(x)
        return f, F.softmax(judge.classifier(f) / judge.temperature, dim=1)[:, :REJECT]


def expected_score(judge, x, reference):
    f, p = judged(judge, x)
    counts = np.bincount(p.argmax(1).numpy(), minlength=10)
    share = counts[counts > 0] / len(x)
    return {"fid_clf": fid_clf(f, reference), "recognizable": float((p.max(1).values >= 0.9).float().mean()),
            "coverage": float(-(share * np.log(share)).sum()), "top_class_share": counts.max() / len(x)}, p


def total_variation(x):
    return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean())


def test_reference_rows_floor_superposed_and_noise(test_set):
    rows = reference_rows(test_set, N, blur_sigma=1.5, seed=0)
    assert set(rows) == ROWS and all(r.shape == (N, 1, 28, 28) for r in rows.values())
    held_out = test_set[0::2]
    assert torch.equal(rows["floor_real_test"], held_out[:N])  # the even half: never the reference's odd half
    assert torch.equal(rows["superposed_test"], (held_out[:N] + held_out[1:N + 1]) / 2)
    noise = rows["noise"]
    assert noise.min() >= -1 and noise.max() <= 1 and abs(float(noise.mean())) < 0.05 and float(noise.std()) > 0.5


def test_reference_rows_are_deterministic_per_seed(test_set):
    a, b = reference_rows(test_set, N, 1.5, seed=3), reference_rows(test_set, N, 1.5, seed=3)
    assert all(torch.equal(a[k], b[k]) for k in ROWS)
    c = reference_rows(test_set, N, 1.5, seed=4)
    assert not torch.equal(a["noise"], c["noise"])
    assert all(torch.equal(a[k], c[k]) for k in ROWS - {"noise"})  # the seed draws the noise only


def test_blurred_rows_differ_from_the_real_digits(test_set):
    rows = reference_rows(test_set, N, blur_sigma=1.5, seed=0)
    real, blurred = rows["floor_real_test"], rows["blurred_test"]
    assert (blurred - real).abs().mean() > 0.1 and total_variation(blurred) < 0.5 * total_variation(real)
    torch.testing.assert_close(blurred, gaussian_blur(real, kernel_size=9, sigma=1.5))
    stronger = reference_rows(test_set, N, blur_sigma=3.0, seed=0)["blurred_test"]
    assert total_variation(stronger) < total_variation(blurred)


def test_reference_rows_refuse_more_than_the_held_out_half(test_set):
    assert len(reference_rows(test_set, N + 10, 1.5, 0)["floor_real_test"]) == N + 10
    with pytest.raises(ValueError, match=f"at most {N + 10}"):
        reference_rows(test_set, N + 11, 1.5, 0)


def test_evaluate_samples_scores_every_row_against_the_floor(judge, test_set, reference):
    rows = reference_rows(test_set, N, 1.5, seed=0)
    samples, train = digits(N, seed=2), digits(60, seed=3)
    metrics, probs = evaluate_samples(judge, reference, samples, rows, train)
    assert set(metrics) == {"n", "n_reference", "model", "memorization"} | ROWS and set(probs) == {"model"} | ROWS
    assert metrics["n"] == N and metrics["n_reference"] == len(reference)
    for name, images in {"model": samples, **rows}.items():
        want, p = expected_score(judge, images, reference)
        torch.testing.assert_close(probs[name], p)
        for key in ("fid_clf", "recognizable", "coverage"):
            assert metrics[name][key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), (name, key)
    floor, model = metrics["floor_real_test"], metrics["model"]
    assert 0 < floor["recognizable"] < 1 and metrics["noise"]["fid_clf"] > floor["fid_clf"]
    assert model["fid_ratio"] == pytest.approx(model["fid_clf"] / floor["fid_clf"])
    assert model["recognizable_ratio"] == pytest.approx(model["recognizable"] / floor["recognizable"])
    _, p = judged(judge, samples)
    assert model["class_histogram"] == torch.bincount(p.argmax(1), minlength=10).tolist()
    assert sum(model["class_histogram"]) == N
    assert model["top_class_share"] == pytest.approx(max(model["class_histogram"]) / N)
    assert metrics["memorization"] == pytest.approx(memorization(samples, rows["floor_real_test"], train))


def test_evaluate_samples_real_digits_as_samples_read_as_the_floor(judge, test_set, reference):
    rows = reference_rows(test_set, N, 1.5, seed=0)
    train = digits(60, seed=5)
    metrics, _ = evaluate_samples(judge, reference, rows["floor_real_test"].clone(), rows, train)
    assert metrics["model"]["fid_ratio"] == pytest.approx(1.0)
    assert metrics["model"]["recognizable_ratio"] == pytest.approx(1.0)
    assert metrics["memorization"]["nn_ratio"] == pytest.approx(1.0) and metrics["memorization"]["nn_train_dist_test"] > 0
    again, _ = evaluate_samples(judge, reference, rows["floor_real_test"].clone(), rows, train)
    assert again == metrics  # deterministic


def test_score_samples_matches_an_independent_computation(judge, reference):
    x = digits(N, seed=6)
    got = score_samples(judge, reference, x)
    want, _ = expected_score(judge, x, reference)
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), key
    assert 0 < got["coverage"] <= math.log(10) and got["fid_clf"] > 0
    assert score_samples(judge, reference, x) == got


def test_score_guided_accuracy_is_the_share_of_wanted_argmax(judge, reference):
    x = digits(N, seed=7)
    _, p = judged(judge, x)
    pred = p.argmax(1)
    wanted = pred.clone()
    wanted[:10] = (pred[:10] + 1) % 10  # 10 of 40 asked for another digit than the one the judge reads
    got = score_guided(judge, reference, x, wanted)
    assert got["accuracy"] == pytest.approx(0.75) and got["n"] == N
    assert got["accuracy"] == pytest.approx(float((pred == wanted).float().mean()))
    assert score_guided(judge, reference, x, (pred + 1) % 10)["accuracy"] == 0.0
    want, _ = expected_score(judge, x, reference)
    for key in ("fid_clf", "recognizable", "coverage"):
        assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), key
