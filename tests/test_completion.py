"""Completion tasks and their measurement (ddpm/completion.py)."""
import pytest
import torch

from ddpm.completion import (best_rows, completion_kwargs, completion_quality, figure_tasks, half_tasks,
                             nearest_completions, sweep_row, sweep_settings)


def test_half_tasks_and_quality():
    images = torch.rand(10, 1, 28, 28) * 2 - 1
    idx, y, masks = half_tasks(images, 4, seed=0)
    assert len(idx) == 8 and torch.equal(idx[:4], idx[4:])
    assert torch.all(y[:4, :, 14:] == 0) and torch.all(y[4:, :, :14] == 0)
    perfect = images[idx][:, None].repeat(1, 3, 1, 1, 1)
    q = completion_quality(perfect, images[idx], masks)
    assert q["mse_visible"] == 0 and q["mse_hidden"] == 0 and q["diversity"] == 0
    noisy = perfect + 0.1 * torch.randn_like(perfect)
    q = completion_quality(noisy, images[idx], masks)
    assert q["mse_visible"] == pytest.approx(0.01, rel=0.1) and q["diversity"] == pytest.approx(0.1 * 2**0.5, rel=0.1)
    colour = torch.rand(4, 3, 3, 8, 8)  # RMS difference per pixel does not grow with the channel count
    q1 = completion_quality(colour[:, :, :1], colour[:, 0, :1], torch.zeros(4, 1, 8, 8))
    q3 = completion_quality(colour, colour[:, 0], torch.zeros(4, 1, 8, 8))
    assert q3["diversity"] == pytest.approx(q1["diversity"], rel=0.15)


def test_figure_tasks_hide_the_bottom_half_in_three_and_the_top_in_three():
    idx, masks = figure_tasks(torch.zeros(50, 1, 28, 28), seed=7)
    assert len(set(idx.tolist())) == 6 and masks.shape == (6, 1, 28, 28)
    assert torch.all(masks[:3, :, 14:] == 0) and torch.all(masks[:3, :, :14] == 1)
    assert torch.all(masks[3:, :, :14] == 0) and torch.all(masks[3:, :, 14:] == 1)
    assert torch.equal(figure_tasks(torch.zeros(50, 1, 28, 28), seed=7)[0], idx)


def test_sweep_rows_and_their_settings():
    settings = sweep_settings([0.1, 1.0])
    assert settings == [("none", 0.0), ("replace", 0.0), ("xt", 0.1), ("xt", 1.0), ("mean", 0.1), ("mean", 1.0),
                        ("mcg", 0.1), ("mcg", 1.0), ("nearest", 0.0)]
    assert completion_kwargs("none", 5.0) == {"method": "gradient", "scale": 0.0, "wrt": "mean"}
    assert completion_kwargs("replace", 5.0)["method"] == "replace"
    assert completion_kwargs("xt", 0.3) == {"method": "gradient", "scale": 0.3, "wrt": "xt"}
    assert completion_kwargs("mcg", 0.3) == {"method": "mcg", "scale": 0.3, "wrt": "xt"}
    with pytest.raises(ValueError, match="route = 'sideways'"):
        completion_kwargs("sideways", 1.0)


def test_best_rows_take_accuracy_then_consistency():
    rows = [{"route": "xt", "scale": 0.1, "accuracy": 0.8, "mse_visible": 0.01},
            {"route": "xt", "scale": 0.3, "accuracy": 0.8, "mse_visible": 0.001},
            {"route": "mean", "scale": 0.1, "accuracy": 0.7, "mse_visible": 0.0},
            {"route": "mcg", "scale": 1.0, "accuracy": 0.85, "mse_visible": 0.0},
            {"route": "none", "scale": 0.0, "accuracy": 0.9, "mse_visible": 0.5}]
    best = best_rows(rows)
    assert best["xt"]["scale"] == 0.3 and best["mean"]["scale"] == 0.1 and best["mcg"]["scale"] == 1.0
    with pytest.raises(ValueError, match="no row for route 'mcg'; re-run dvc repro completion_sweep"):
        best_rows(rows[:3])  # a table written before the MCG route


def test_nearest_completions_are_the_brute_force_lookup_with_the_given_half_kept():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(300, 1, 12, 12, generator=g) * 2 - 1
    test = torch.rand(5, 1, 12, 12, generator=g) * 2 - 1
    test[0, :, :6] = train[17, :, :6]  # task 0 (bottom hidden) shares its given half with training image 17
    idx, y, masks = half_tasks(test, 5, seed=1)
    k = 3
    out = nearest_completions(train, y, masks, k)
    assert out.shape == (10 * k, 1, 12, 12)
    for i in range(10):
        dist = (((train - y[i]) * masks[i]) ** 2).flatten(1).sum(1)
        for j, nearest in enumerate(dist.topk(k, largest=False).indices):
            expected = masks[i] * y[i] + (1 - masks[i]) * train[nearest]
            assert torch.allclose(out[i * k + j], expected, atol=1e-6), (i, j)
    first = int((idx[:5] == 0).nonzero()[0])  # the task of test image 0 with its bottom half hidden
    assert torch.equal(out[first * k, :, 6:], train[17, :, 6:])
    with pytest.raises(ValueError, match="k = 0"):
        nearest_completions(train, y, masks, 0)
    with pytest.raises(ValueError, match="route = 'nearest'"):
        completion_kwargs("nearest", 0.0)


def test_a_sweep_row_reads_each_completion_against_its_own_task():
    originals, masks = torch.rand(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    completions = originals.repeat_interleave(3, 0)  # image-major: 3 per task
    labels = torch.tensor([7, 1])
    predicted = torch.tensor([7, 7, 7, 1, 7, 1])  # task 0 all right, task 1 two of three
    row = sweep_row("xt", 0.1, completions, predicted, labels, originals, masks, seconds=3.0)
    assert row["accuracy"] == pytest.approx(5 / 6) and row["k"] == 3 and row["n_images"] == 2
    assert row["seconds_per_image"] == pytest.approx(0.5) and row["mse_visible"] == 0
