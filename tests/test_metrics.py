import math

import numpy as np
import pytest
import torch

from ddpm.metrics import (check_samples, coverage, fid_clf, frechet_distance, memorization, nearest_distance,
                          recognizable)


def test_identical_sets_have_zero_fid():
    f = torch.randn(2000, 8, generator=torch.Generator().manual_seed(0))
    assert fid_clf(f, f) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_gaussians_matches_the_closed_form():
    """N(0, I) vs N(μ, diag(s²)): d² = ‖μ‖² + Σ (1 − s_i)² (Σ commute, so the trace term is Σ 2·s_i)."""
    mu, s = np.array([1.0, -2.0, 0.5]), np.array([1.0, 2.0, 0.5])
    assert frechet_distance(np.zeros(3), np.eye(3), mu, np.diag(s**2)) == pytest.approx(
        (mu**2).sum() + ((1 - s) ** 2).sum(), rel=1e-9)
    g = torch.Generator().manual_seed(1)
    a = torch.randn(100_000, 3, generator=g, dtype=torch.float64)
    b = torch.randn(100_000, 3, generator=g, dtype=torch.float64) * torch.tensor(s) + torch.tensor(mu)
    assert fid_clf(a, b) == pytest.approx((mu**2).sum() + ((1 - s) ** 2).sum(), rel=0.02)


def test_recognizable_and_coverage_by_hand():
    probs = torch.tensor([[0.95] + [0.05 / 9] * 9, [0.5, 0.5] + [0.0] * 8, [0.0] * 9 + [1.0]])
    assert recognizable(probs) == pytest.approx(2 / 3)
    one_class = torch.zeros(50, 10)
    one_class[:, 3] = 1
    assert coverage(one_class) == 0.0
    uniform = torch.eye(10).repeat(7, 1)
    assert coverage(uniform) == pytest.approx(math.log(10))
    half = torch.eye(10)[[0, 1] * 5]
    assert coverage(half) == pytest.approx(math.log(2))


def test_memorization_flags_copies():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(200, 1, 28, 28, generator=g) * 2 - 1
    held_out = torch.rand(50, 1, 28, 28, generator=g) * 2 - 1
    copies = train[:50] + 0.001
    assert memorization(copies, held_out, train)["nn_ratio"] < 0.01
    assert memorization(held_out.flip(0), held_out, train)["nn_ratio"] == pytest.approx(1.0)
    assert torch.allclose(nearest_distance(train[:3], train, chunk=2), torch.zeros(3), atol=1e-3)


@pytest.mark.parametrize("bad, words", [
    (torch.zeros(4, 3, 28, 28), "shape (N, 1, 28, 28)"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), "float tensor"),
    (torch.full((4, 1, 28, 28), 2.0), "in [-1, 1]"),
    (torch.full((4, 1, 28, 28), float("nan")), "4 samples contain NaN"),
])
def test_bad_samples_are_named(bad, words):
    with pytest.raises(ValueError, match=r"eval\.pt: .*" + words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        check_samples(bad, "eval.pt")
