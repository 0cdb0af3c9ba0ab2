"""ddpm/report.py: formatting, templates, Markdown → HTML, verdicts, dvclive reads, headline, YAML, figures."""
import jinja2
import matplotlib.pyplot as plt
import pytest
import torch
from ruamel.yaml import YAML

from ddpm import report as R


@pytest.fixture(autouse=True)
def _close_all():
    yield
    plt.close("all")


def write_metric(live, name, values, steps=None):
    """A dvclive history as dvclive writes it: <live>/metrics/<name>.tsv, columns step and the name's last part."""
    path = live / "metrics" / f"{name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    steps = range(len(values)) if steps is None else steps
    path.write_text(f"step\t{name.split('/')[-1]}\n" + "".join(f"{s}\t{v}\n" for s, v in zip(steps, values)))


def write_quality(live):
    for name, values in {"minutes": [1.0, 2.0], "recognizable": [0.5, 0.75], "coverage": [2.0, 2.25],
                         "fid_ratio": [4.0, 2.0]}.items():
        write_metric(live, f"quality/{name}", values, steps=[10, 20])


def test_fmt_formats_numbers_and_passes_strings_and_none():
    assert R.fmt(1.23456, ".2f") == "1.23"
    assert R.fmt(3) == "3"
    assert R.fmt("uncond", ".2f") == "uncond"
    assert R.fmt(None, ".2f") == "–"


def test_table_markdown_is_exact_with_formats_in_first_row_column_order():
    rows = [{"name": "a", "x": 1.23456, "n": None}, {"name": "b", "x": 2, "n": 7}]
    assert R.table_markdown(rows, {"x": ".2f"}) == ("| name | x | n |\n|---:|---:|---:|\n"
                                                    "| a | 1.23 | – |\n| b | 2.00 | 7 |")
    assert R.table_markdown([{"k": 0.5}]) == "| k |\n|---:|\n| 0.5 |"


HISTORY = [{"epoch": 1, "step": 4, "loss": 0.123456, "seconds": 30.0, "images_per_s": 4.0},
           {"epoch": 2, "step": 8, "loss": 0.05, "seconds": 30.0, "images_per_s": 5.0}]


def test_render_fills_a_template_with_its_filters():
    md = R.render("training.md.j2", history=HISTORY, n_train=150, batch_size=32, minutes=1.0, device="cpu",
                  loss_png="figures/loss.png",
                  epochs=[{k: h[k] for k in ("epoch", "step", "loss", "seconds", "images_per_s")} for h in HISTORY])
    assert "2 epochs of 150 images, batch 32: final epoch loss **0.0500**" in md
    assert "1.0 minutes of training at 5 images/s on the last epoch (cpu)" in md
    assert "![loss curve](figures/loss.png)" in md
    assert "| 1 | 4 | 0.1235 | 30 | 4 |" in md


def test_render_refuses_a_missing_variable():
    with pytest.raises(jinja2.UndefinedError, match="device"):
        R.render("training.md.j2", history=HISTORY, n_train=150, batch_size=32, minutes=1.0, loss_png="x.png",
                 epochs=[])


def test_markdown_to_html_typesets_math_makes_tables_and_escapes_raw_html():
    md = "Inline $x^2$.\n\n$$y = 1$$\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>alert(1)</script> <b>b</b>\n"
    page = R.markdown_to_html(md, "T <&>")
    assert page.startswith("<!doctype html>") and "<title>T &lt;&amp;&gt;</title>" in page
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline"><mrow><msup><mi>x</mi><mn>2</mn>' in page
    assert 'display="block"><mrow><mi>y</mi>' in page
    assert "$" not in page.split("<body>")[1]
    assert "<table>" in page and "<th>a</th>" in page and "<td>2</td>" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;b&lt;/b&gt;" in page


@pytest.mark.parametrize("model, real, word", [
    (0.95, 1.0, "Yes"), (0.9, 1.0, "Yes"), (0.45, 0.5, "Yes"), (0.89, 1.0, "Mostly"), (0.7, 1.0, "Mostly"),
    (0.69, 1.0, "Partly"), (0.4, 1.0, "Partly"), (0.39, 1.0, "No"), (0.0, 1.0, "No"), (0.5, 0.0, "No"),
    (1.0, 0.5, "Yes")])
def test_recognizable_verdict_thresholds(model, real, word):
    assert R.recognizable_verdict(model, real) == word


def test_read_live_metric_reads_dvclive_tsv(tmp_path):
    write_metric(tmp_path, "train/loss", [1.0, 0.5, 0.25])
    df = R.read_live_metric(tmp_path, "train/loss")
    assert list(df.columns) == ["step", "loss"]
    assert df["step"].tolist() == [0, 1, 2] and df["loss"].tolist() == [1.0, 0.5, 0.25]
    with pytest.raises(FileNotFoundError, match=r"epoch[/\\]loss\.tsv"):
        R.read_live_metric(tmp_path, "epoch/loss")


def test_training_quality_merges_the_four_series_on_step(tmp_path):
    assert R.training_quality(tmp_path) is None
    write_quality(tmp_path)
    write_metric(tmp_path, "quality/coverage", [2.0, 2.25, 9.0], steps=[10, 20, 30])  # a step the others lack
    q = R.training_quality(tmp_path)
    assert list(q.columns) == ["step", "minutes", "recognizable", "coverage", "fid_ratio"]
    assert q.values.tolist() == [[10, 1.0, 0.5, 2.0, 4.0], [20, 2.0, 0.75, 2.25, 2.0]]


def test_headline_picks_the_best_rows():
    completion = [{"route": r, "scale": s, "accuracy": a, "mse_visible": 0.1}
                  for r, s, a in [("xt", 1, 0.5), ("xt", 2, 0.7), ("mean", 1, 0.6), ("mcg", 1, 0.8), ("none", 0, 0.3)]]
    data = {"train": {"minutes": 1.5}, "train_cfg": {"minutes": 2.0}, "judge": {"accuracy": 0.99},
            "evaluation": {"model": {"fid_ratio": 3.0, "recognizable": 0.6, "coverage": 2.2}},
            "completion": completion,
            "cfg": [{"guidance": 0, "accuracy": 0.8}, {"guidance": 2, "accuracy": 0.9},
                    {"guidance": "uncond", "accuracy": 0.95}]}  # uncond is not a guidance scale
    assert R.headline(data) == {"minutes": 3.5, "fid_ratio": 3.0, "recognizable": 0.6, "coverage": 2.2,
                                "completion": 0.8, "guidance": 0.9, "judge": 0.99}


def test_dump_yaml_round_trips_and_is_block_at_the_top():
    p = {"train_mnist": {"lr": 0.001, "channel_mults": [1, 2], "name": "x"}, "report": {"posterior_check_t": [1, 10]}}
    text = R.dump_yaml(p)
    assert text.splitlines()[0] == "train_mnist:" and "  lr: 0.001" in text.splitlines()
    assert not text.endswith("\n") and YAML(typ="safe").load(text) == p


def image(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def probs(n, seed):  # the judge's 11 classes (10 digits and "not a digit")
    return torch.softmax(torch.randn(n, 11, generator=torch.Generator().manual_seed(seed)), 1)


def mnist_data():
    return {"history": HISTORY, "grid": image(20, 1, 8, 8), "samples": image(24, 1, 8, 8, seed=1),
            "judged": {"grid": probs(20, 2), "model": probs(24, 3)}, "info": {"sampler": "ddim"},
            "evaluation": {"model": {"class_histogram": [2, 3, 1, 0, 4, 2, 3, 3, 3, 3]},
                           "floor_real_test": {"recognizable": 0.9}},
            "completions": {"visible": image(2, 1, 8, 8), "masks": torch.ones(2, 1, 8, 8),
                            "completions": image(2, 3, 1, 8, 8, seed=4)}}


def inputs(tmp_path, quality=False, monitors=0):
    live = tmp_path / "inputs" / "plots"
    write_metric(live, "train/loss", [1.0, 0.5, 0.3, 0.2])
    write_metric(live, "epoch/loss", [0.6, 0.25], steps=[4, 8])
    if quality:
        write_quality(live)
    paths = []
    for epoch in range(1, monitors + 1):
        paths.append(live / "images" / "monitor" / f"epoch_{epoch:03d}.png")
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        plt.imsave(paths[-1], image(8, 16).numpy(), cmap="gray")
    return live, paths


def files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def run_dir(tmp_path, monkeypatch):
    cwd = tmp_path / "run"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_mnist_figures_returns_figures_and_writes_nothing(tmp_path, monkeypatch):
    live, _ = inputs(tmp_path)
    before, cwd = files(tmp_path / "inputs"), run_dir(tmp_path, monkeypatch)
    figs = R.mnist_figures(mnist_data(), live, [], batch_size=32)
    assert list(cwd.iterdir()) == [] and files(tmp_path / "inputs") == before
    assert set(figs) == {"loss.png", "samples16.png", "samples16_judged.png", "histogram.png", "per_class.png",
                         "overview.png"}
    assert all(isinstance(f, plt.Figure) and isinstance(o, dict) for f, o in figs.values())
    assert figs["loss.png"][1] == {"dpi": 130} and figs["overview.png"][1] == {"dpi": 80, "bbox_inches": "tight"}
    assert "(5 per epoch)" in figs["loss.png"][0].axes[0].get_xlabel()  # 5 images/s × 30 s = 150 images, batch 32
    assert figs["samples16.png"][0]._suptitle.get_text() == "16 samples (ddim, EMA weights)"
    assert sum(bool(ax.images) for ax in figs["samples16.png"][0].axes) == 16  # the grid cut to 16


def test_mnist_figures_adds_monitor_and_quality_when_logged(tmp_path, monkeypatch):
    live, monitors = inputs(tmp_path, quality=True, monitors=2)
    cwd = run_dir(tmp_path, monkeypatch)
    figs = R.mnist_figures(mnist_data(), live, monitors, batch_size=32)
    assert list(cwd.iterdir()) == []
    assert {"monitor.png", "quality.png"} <= set(figs)
    assert figs["monitor.png"][1] == {"dpi": 110} and figs["quality.png"][1] == {"dpi": 120}
    assert [ax.get_ylabel() for ax in figs["monitor.png"][0].axes] == ["epoch 1", "epoch 2"]


def celeba_inputs():
    row = {"diversity": 0.3, "n": 4, "seconds": 1.5, "device": "cpu"}
    table = [{"guidance": 1.0, "clip_score": 0.2, **row}, {"guidance": 3.0, "clip_score": 0.25, **row},
             {"guidance": "uncond", "clip_score": 0.1, **row}]
    samples = {"samples": {w: image(2, 2, 3, 8, 8, seed=i) for i, w in enumerate(["1.0", "3.0", "uncond"])}}
    p = {"sweep_celeba": {"prompts": ["a smiling face", "a face with glasses"], "n_per_prompt": 2},
         "train_celeba": {"batch_size": 8, "p_uncond": 0.1}, "clip": {"model": "ViT-B-32", "pretrained": "tiny"}}
    return table, samples, p


@pytest.mark.parametrize("monitors", [0, 1])
def test_celeba_report_returns_markdown_headline_and_figures_without_writing(tmp_path, monkeypatch, monitors):
    live, paths = inputs(tmp_path, monitors=monitors)
    table, samples, p = celeba_inputs()
    before, cwd = files(tmp_path / "inputs"), run_dir(tmp_path, monkeypatch)
    md, head, figs = R.celeba_report(table, samples, HISTORY, live, paths, p)
    assert list(cwd.iterdir()) == [] and files(tmp_path / "inputs") == before
    assert head == {"best_guidance": 3.0, "best_clip_score": 0.25, "clip_score_uncond": 0.1}
    expected = {"loss.png", "sweep.png", "grid.png", "prompted.png", "unconditional.png"}
    assert set(figs) == (expected | {"monitor.png"} if monitors else expected)
    assert figs["prompted.png"][0]._suptitle.get_text() == "Prompted faces at w = 3 (a row per prompt)"
    assert "(19 per epoch)" in figs["loss.png"][0].axes[0].get_xlabel()  # ceil(150 / 8)
    assert "CLIP: `ViT-B-32` with weights `tiny`" in md and "probability 0.1" in md
    assert "| 3.0 | 0.2500 | 0.3000 | 4 | 1.5 |" in md and "| uncond | 0.1000 |" in md
    assert ("![monitoring](celeba/monitor.png)" in md) == bool(monitors)
