"""The figures (ddpm/figures.py): panels, plotted data, titles and labels of each figure, and save_figure's atomic PNG."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ddpm import figures as F

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_all():
    yield
    plt.close("all")


def px(x):
    """What the figures show of an image in [-1, 1]: [0, 1], channels last, a lone channel squeezed."""
    x = ((x.float().clamp(-1, 1) + 1) / 2)
    return (x.permute(1, 2, 0).squeeze(-1) if x.ndim == 3 else x).numpy()


def shown(im):  # the array an AxesImage displays
    return np.asarray(im.get_array())


def test_save_figure_writes_a_png_atomically_and_closes(tmp_path):
    fig = plt.figure(figsize=(2, 1))
    path = tmp_path / "new" / "f.png"
    F.save_figure(fig, path, dpi=50)
    assert path.read_bytes()[:8] == PNG and Image.open(path).size == (100, 50)
    assert [p.name for p in path.parent.iterdir()] == ["f.png"]  # no leftover temporary file
    assert not plt.fignum_exists(fig.number)


def test_save_figure_failure_keeps_the_old_file_and_still_closes(tmp_path):
    path = tmp_path / "f.nope"
    path.write_bytes(b"old")
    fig = plt.figure()
    with pytest.raises(ValueError):
        F.save_figure(fig, path)  # no such format
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.nope"]
    assert not plt.fignum_exists(fig.number)


def test_loss_curve_plots_both_series():
    step = pd.DataFrame({"step": [1, 2, 3, 4], "loss": [0.9, 0.5, 0.4, 0.3]})
    epoch = pd.DataFrame({"step": [2, 4], "loss": [0.7, 0.35]})
    fig = F.loss_curve_figure(step, epoch, steps_per_epoch=2)
    (ax,) = fig.axes
    a, b = ax.get_lines()
    assert list(a.get_xdata()) == [1, 2, 3, 4] and list(a.get_ydata()) == [0.9, 0.5, 0.4, 0.3]
    assert list(b.get_xdata()) == [2, 4] and list(b.get_ydata()) == [0.7, 0.35]
    assert ax.get_title() == "Training loss" and "2 per epoch" in ax.get_xlabel() and ax.get_yscale() == "log"
    assert len(ax.get_legend().get_texts()) == 2


def test_image_grid_shows_each_image_with_its_caption():
    images = torch.rand(5, 1, 6, 6) * 4 - 2  # out of range: clamped
    fig = F.image_grid_figure(images, nrow=3, title="grid title", labels=list("abcde"))
    assert len(fig.axes) == 6 and fig.get_suptitle() == "grid title"
    drawn = [ax for ax in fig.axes if ax.get_images()]
    assert len(drawn) == 5 and [ax.get_title() for ax in drawn] == list("abcde")
    for ax, img in zip(drawn, images):
        np.testing.assert_allclose(shown(ax.get_images()[0]), px(img))
    rgb = F.image_grid_figure(torch.zeros(2, 3, 4, 4), nrow=2, title="rgb")
    assert shown(rgb.axes[0].get_images()[0]).shape == (4, 4, 3)


def _monitor_pngs(folder, epochs):
    paths = []
    for e in epochs:
        paths.append(folder / f"grid_v2_epoch{e:03d}.png")
        Image.fromarray(np.full((4, 12), e * 10 % 256, dtype=np.uint8)).save(paths[-1])
    return paths


def test_monitor_figure_one_row_per_epoch_thinned_to_max_rows(tmp_path):
    paths = _monitor_pngs(tmp_path, [1, 2, 3])
    fig = F.monitor_figure(paths)
    assert len(fig.axes) == 3 and [ax.get_ylabel() for ax in fig.axes] == ["epoch 1", "epoch 2", "epoch 3"]
    for ax, p in zip(fig.axes, paths):
        np.testing.assert_array_equal(shown(ax.get_images()[0]), np.asarray(Image.open(p)))
    fig = F.monitor_figure(_monitor_pngs(tmp_path, range(1, 16)), max_rows=4)  # the first and the last kept
    assert [ax.get_ylabel() for ax in fig.axes] == ["epoch 1", "epoch 6", "epoch 10", "epoch 15"]


def test_per_class_figure_groups_by_label_most_confident_first():
    images = torch.linspace(-1, 1, 13).view(13, 1, 1, 1).expand(13, 1, 5, 5).clone()
    pred = torch.tensor([3, 3, 3, 7, 0, 0, 0, 0, 0, 1, 3, 7, 3])
    conf = torch.linspace(0.3, 0.9, 13)
    probs = torch.full((13, 10), 0.01)
    probs[torch.arange(13), pred] = conf
    fig = F.per_class_figure(images, probs, per_class=3)
    assert len(fig.axes) == 30
    grid = np.array(fig.axes).reshape(10, 3)
    assert [grid[d, 0].get_ylabel() for d in range(10)] == [str(d) for d in range(10)]
    counts = [sum(bool(ax.get_images()) for ax in grid[d]) for d in range(10)]
    assert counts == [3, 1, 0, 3, 0, 0, 0, 2, 0, 0]
    for j, i in enumerate([12, 10, 2]):  # the four 3s by falling confidence, the least confident left out
        np.testing.assert_allclose(shown(grid[3, j].get_images()[0]), px(images[i, 0]))


def test_histogram_bars_are_the_counts_and_the_line_the_uniform_share():
    counts = [5, 0, 3, 2, 10, 1, 1, 4, 2, 2]
    fig = F.histogram_figure(counts)
    (ax,) = fig.axes
    assert [p.get_height() for p in ax.patches] == counts
    (uniform,) = [line for line in ax.get_lines() if line.get_label() == "uniform"]
    assert list(uniform.get_ydata()) == [3.0, 3.0]
    assert ax.get_title() == "Class histogram of the samples"


def test_sampler_figure_one_line_per_sampler_ema_only_sorted_by_steps():
    def row(sampler, steps, eta, weights="ema", w=0.0):
        return {"sampler": sampler, "steps": steps, "eta": eta, "weights": weights, "autoguidance": w,
                "fid_clf": steps / 10 + eta + w, "recognizable": 1 - 1 / steps}
    rows = [row("ddim", 50, 0.0), row("ddim", 10, 0.0), row("ddim", 20, 0.0), row("ancestral", 1000, 1.0),
            row("ddim", 20, 1.0), row("ddim", 50, 0.0, "raw", 0.0) | {"fid_clf": 999.0}, row("ddim", 20, 0.0, w=2.0)]
    fig = F.sampler_figure(rows)
    left, right = fig.axes
    labels = [line.get_label() for line in left.get_lines()]
    assert labels == ["ancestral", "ddim, η = 0", "ddim, η = 0, autoguidance 2", "ddim, η = 1"]
    assert [line.get_label() for line in right.get_lines()] == labels
    ddim = left.get_lines()[1]
    assert list(ddim.get_xdata()) == [10, 20, 50] and list(ddim.get_ydata()) == [1.0, 2.0, 5.0]
    assert 999.0 not in np.concatenate([line.get_ydata() for line in left.get_lines()])  # raw weights left out
    np.testing.assert_allclose(right.get_lines()[1].get_ydata(), [0.9, 0.95, 0.98])
    assert left.get_xscale() == "log" and left.get_yscale() == "log" and right.get_ylabel() == "recognizable"


def test_completion_figure_rows_columns_and_captions():
    n, k = 2, 3
    originals, visible = torch.rand(n, 1, 8, 8) * 2 - 1, torch.rand(n, 1, 8, 8) * 2 - 1
    masks = torch.ones(n, 1, 8, 8)
    masks[0, :, 4:] = 0  # the bottom half hidden
    masks[1, :, :4] = 0  # the top half hidden
    completions = torch.rand(n, k, 1, 8, 8) * 2 - 1
    fig = F.completion_figure(originals, visible, masks, completions, [7, 2], "my subtitle")
    axes = np.array(fig.axes).reshape(n, k + 2)
    assert fig.get_suptitle() == "Image completion (my subtitle)"
    assert [ax.get_title() for ax in axes[0]] == ["original", "visible half", "completion 1", "completion 2",
                                                  "completion 3"]
    assert axes[0, 0].get_ylabel() == "digit 7\nbottom hidden" and axes[1, 0].get_ylabel() == "digit 2\ntop hidden"
    assert [len(ax.get_images()) for ax in axes[1]] == [1, 2, 1, 1, 1]  # the visible half carries the shading
    np.testing.assert_allclose(shown(axes[1, 0].get_images()[0]), px(originals[1, 0]))
    np.testing.assert_allclose(shown(axes[1, 1].get_images()[0]), px(visible[1, 0]))
    np.testing.assert_allclose(shown(axes[1, 4].get_images()[0]), px(completions[1, 2, 0]))


def test_completion_sweep_lines_per_present_route_and_baselines():
    rows = [{"route": "a", "scale": 10.0, "accuracy": 0.9}, {"route": "a", "scale": 0.1, "accuracy": 0.2},
            {"route": "a", "scale": 1.0, "accuracy": 0.5}, {"route": "none", "scale": 0.0, "accuracy": 0.1},
            {"route": "replace", "scale": 0.0, "accuracy": 0.4}, {"route": "other", "scale": 1.0, "accuracy": 0.7}]
    fig = F.completion_sweep_figure(rows, {"a": "route A", "b": "route B"})
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["route A", "no guidance (scale 0)", "replacement baseline"]
    assert list(lines[0].get_xdata()) == [0.1, 1.0, 10.0] and list(lines[0].get_ydata()) == [0.2, 0.5, 0.9]
    assert list(lines[1].get_ydata()) == [0.1, 0.1] and list(lines[2].get_ydata()) == [0.4, 0.4]
    assert ax.get_xscale() == "log" and ax.get_ylim() == (0, 1.02)


def test_tradeoff_points_annotations_and_unconditional_line():
    rows = [{"guidance": 1.0, "fid_clf": 2.0, "accuracy": 0.6}, {"guidance": 3.0, "fid_clf": 5.0, "accuracy": 0.95}]
    fig = F.tradeoff_figure(rows, {"fid_clf": 4.2})
    (ax,) = fig.axes
    points, uncond = ax.get_lines()
    assert list(points.get_xdata()) == [2.0, 5.0] and list(points.get_ydata()) == [0.6, 0.95]
    assert [t.get_text() for t in ax.texts] == ["w=1", "w=3"]
    assert list(uncond.get_xdata()) == [4.2, 4.2] and "fid_clf 4.20" in uncond.get_label()


def test_guidance_grid_prompts_by_scales():
    prompts = ["a cat", "a dog"]
    samples = {"1.0": torch.rand(2, 1, 6, 6) * 2 - 1, "3.0": torch.rand(2, 1, 6, 6) * 2 - 1, "7.5": torch.rand(2, 3, 6, 6)}
    fig = F.guidance_grid_figure(prompts, samples)
    axes = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in axes[0]] == ["w = 1.0", "w = 3.0", "w = 7.5"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == prompts
    for i in range(2):
        for j, w in enumerate(samples):
            np.testing.assert_allclose(shown(axes[i, j].get_images()[0]), px(samples[w][i]))


def test_clip_sweep_two_axes_sorted_without_uncond():
    rows = [{"guidance": "uncond", "clip_score": 0.1, "diversity": 0.9},
            {"guidance": 5.0, "clip_score": 0.3, "diversity": 0.4}, {"guidance": 1.0, "clip_score": 0.2, "diversity": 0.6}]
    fig = F.clip_sweep_figure(rows)
    ax, ax2 = fig.axes
    assert list(ax.get_lines()[0].get_xdata()) == [1.0, 5.0] and list(ax.get_lines()[0].get_ydata()) == [0.2, 0.3]
    assert list(ax2.get_lines()[0].get_ydata()) == [0.6, 0.4]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["CLIP score", "diversity"]
    assert ax2.get_ylabel() == "diversity (1 − cos)"


@pytest.mark.parametrize("n_samples, m", [(20, 16), (5, 5)])
def test_overview_at_most_16_samples_then_completions(n_samples, m):
    n, k = 2, 3
    samples = torch.rand(n_samples, 1, 8, 8) * 2 - 1
    visible, masks, completions = torch.rand(n, 1, 8, 8), torch.ones(n, 1, 8, 8), torch.rand(n, k, 1, 8, 8) * 2 - 1
    fig = F.overview_figure(samples, visible, masks, completions)
    assert len(fig.axes) == m + n * (1 + k)
    assert [t.get_text() for t in fig.texts] == [f"{m} samples", "given half (hidden half shaded), then 3 completions"]
    for ax, img in zip(fig.axes[:m], samples):
        np.testing.assert_allclose(shown(ax.get_images()[0]), px(img[0]))
    np.testing.assert_allclose(shown(fig.axes[-1].get_images()[0]), px(completions[-1, -1, 0]))


@pytest.mark.parametrize("real", [0.95, None])
def test_quality_vs_minutes_lines_per_curve_and_shared_legend(real):
    curves = {"run a": pd.DataFrame({"minutes": [1, 2], "recognizable": [0.1, 0.5], "fid_ratio": [40.0, 9.0]}),
              "run b": pd.DataFrame({"minutes": [1, 3], "recognizable": [0.2, 0.7], "fid_ratio": [30.0, 3.0]})}
    fig = F.quality_vs_minutes_figure(curves, real)
    left, right = fig.axes
    assert len(left.get_lines()) == (3 if real is not None else 2) and len(right.get_lines()) == 3
    assert list(left.get_lines()[1].get_ydata()) == [0.2, 0.7] and list(right.get_lines()[0].get_ydata()) == [40, 9]
    assert list(right.get_lines()[2].get_ydata()) == [1.0, 1.0] and right.get_yscale() == "log"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["run a", "run b", "real digits"]
