"""The judge (ddpm/judge.py): a digit classifier that rejects what is not a digit, and its calibration."""
import math

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from ddpm.data import load_mnist
from ddpm.judge import (REJECT, Judge, calibrate, expected_calibration_error, holdout_split, judge_images, judge_rows,
                        load_judge, random_shift, reference_features, rejects, smooth_noise, train_judge)
from ddpm.metrics import recognizable, split_test


def test_judge_shapes_and_a_foreign_checkpoint(tmp_path):
    judge = Judge()
    out = judge_images(judge, torch.rand(5, 1, 28, 28) * 2 - 1, batch_size=2)
    assert out.features.shape == (5, 64) and out.probs.shape == (5, 10)
    assert torch.all(out.probs.sum(1) < 1)  # the rest is the probability of "not a digit"
    torch.save({"judge": {"weight": torch.zeros(3)}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt: not a judge checkpoint"):
        load_judge(tmp_path / "bad.pt")


def test_reference_features_are_the_odd_half_and_stored_with_the_judge(tmp_path):
    """The reference is the odd-indexed half of the test set, the floor the even-indexed half (interleaved, not
    first against last); an older judge checkpoint without reference features is named, with the stage to re-run."""
    judge, test = Judge(), torch.rand(20, 1, 28, 28) * 2 - 1
    features = judge_images(judge, test).features
    ref = reference_features(features)
    assert torch.equal(ref, features[1::2]) and torch.equal(split_test(test)[0], test[0::2])
    torch.save({"judge": judge.state_dict(), "reference": ref}, tmp_path / "judge.pt")
    assert torch.equal(load_judge(tmp_path / "judge.pt")[1], ref)
    torch.save({"judge": judge.state_dict()}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="old.pt: holds no reference features .* re-run dvc repro judge"):
        load_judge(tmp_path / "old.pt")


def test_random_shift_moves_digits_without_flipping():
    x = -torch.ones(1, 1, 28, 28)
    x[0, 0, 10, 12] = 1
    shifted = random_shift(x.repeat(50, 1, 1, 1), 2, torch.Generator().manual_seed(0))
    rows, cols = (shifted[:, 0] == 1).nonzero()[:, 1], (shifted[:, 0] == 1).nonzero()[:, 2]
    assert len(rows) == 50 and rows.min() >= 8 and rows.max() <= 12 and cols.min() >= 10 and cols.max() <= 14
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 5


def test_rejects_are_non_digits_in_range():
    g = torch.Generator().manual_seed(0)
    digits = torch.rand(400, 1, 28, 28) * 2 - 1
    fake = rejects(digits, g)
    assert fake.shape == digits.shape and fake.min() >= -1 and fake.max() <= 1
    blobs = smooth_noise(8, g)  # low-frequency: neighbouring pixels agree far more than in white noise
    assert (blobs[..., 1:] - blobs[..., :-1]).abs().mean() < 0.3 * (fake[..., 1:] - fake[..., :-1]).abs().mean() + 0.2


def test_ece_and_temperature_by_hand():
    labels = torch.tensor([0, 1, 2, 3])
    perfect = torch.eye(10)[labels]
    assert expected_calibration_error(perfect, labels) == pytest.approx(0.0)
    overconfident = torch.full((4, 10), 0.0)
    overconfident[:, 0] = 1.0  # always sure it is a 0, right once in four
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.75)
    judge = Judge().eval()
    x, y = torch.rand(300, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (300,))
    with torch.no_grad():
        judge.classifier.weight.mul_(50)  # sharpen an untrained judge: its confidence outruns its accuracy
    t = calibrate(judge, x, y)
    assert t > 1 and float(judge.temperature) == pytest.approx(t)
    holdout, kept = holdout_split(100, 10, seed=0)
    assert len(kept) == 10 and set(holdout.tolist()).isdisjoint(kept.tolist())


def test_the_judge_rejects_noise_and_blur_but_reads_real_digits(mnist_dir):
    """Trained briefly on real MNIST (12 000 digits, 2 epochs), the judge reads most held-out digits as digits
    and calls almost no noise or blurred digit recognizable: recognizable cannot be fooled by either."""
    x, y = load_mnist(mnist_dir, "train", 12_000)
    judge, _ = train_judge(x, y, epochs=2, batch_size=128, lr=0.004, seed=0)
    calibrate(judge, x[-1000:], y[-1000:])
    xt, yt = load_mnist(mnist_dir, "test")
    held_out = split_test(xt)[0][:2000]
    rows = judge_rows(judge, held_out, seed=0)
    assert rows["real"] >= 0.85 and rows["noise"] <= 0.05 and rows["blurred"] <= 0.30, rows
    accuracy = float((judge_images(judge, xt[:2000]).probs.argmax(1) == yt[:2000]).float().mean())
    assert accuracy >= 0.95
    heavy = gaussian_blur(held_out[:500], kernel_size=11, sigma=3.0)
    assert recognizable(judge_images(judge, heavy).probs) <= 0.05
    assert REJECT == 10 and math.isfinite(float(judge.temperature))
