"""End to end: the real `dvc exp run` on tiny params in a temporary git copy of the project, then what a user does
next: `dvc metrics show`, `dvc plots show`, `dvc status`, editing code and params, opening the report."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from ddpm.checkpoint import load_checkpoint
from ddpm.params import read_yaml
from tests.conftest import own_modules, stage_env, write_yaml

ROOT = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]
CLI = [sys.executable, "-m", "ddpm.cli"]  # the `ddpm` console script's entry point


def run(cmd, cwd, check=True, **kw):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=stage_env(cwd), **kw)
    if check:
        assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def tiny_params(project: Path, mnist_dir: Path) -> None:
    p = read_yaml(project / "params.yaml")
    p["download_mnist"]["sources"] = [f"dir:{mnist_dir}"]
    p["diffusion"]["T"] = 50
    p["model"].update(channels=8, channel_mults=[1, 2], num_res_blocks=1, attention_levels=[1], heads=2, groups=4)
    p["train_mnist"].update(epochs=2, max_images=256, batch_size=64, log_every=2, monitor_n=4, monitor_steps=5,
                            monitor_judge_n=16, warmup_steps=2, guide_step=3)  # 4 steps per epoch
    p["train_mnist_cfg"].update(epochs=1, monitor_guidance=2.0)
    p["sample"].update(n_eval=80, sampler="ddim", steps=10, batch_size=40, nproc=2, autoguidance=1.0)  # sharded over 2 gloo processes
    p["judge"].update(epochs=1, max_images=3000, min_accuracy=0.0, holdout=500)
    p["compare_samplers"].update(n=20, batch_size=20, nproc=2, rows=[
        {"sampler": "ancestral", "steps": 50, "eta": 1.0, "weights": "ema"},
        *({"sampler": "ddim", "steps": s, "eta": 0.0, "weights": "ema"} for s in (5, 10)),
        {"sampler": "dpm++2m", "steps": 5, "eta": 0.0, "weights": "ema"},
        {"sampler": "ddim", "steps": 5, "eta": 0.0, "weights": "raw"},
        {"sampler": "ddim", "steps": 5, "eta": 0.0, "weights": "ema", "autoguidance": 1.0}])
    p["sweep_mnist_cfg"].update(guidance_scales=[0.0, 2.0], n_per_prompt=3, sampler="ddim", steps=5, batch_size=30,
                                nproc=2)
    p["completion_sweep"].update(sampler="ddim", steps=5, images=4, completions=2, scales=[0.1, 0.5], batch_size=16,
                                 nproc=2)
    p["complete"].update(sampler="ddim", steps=5, n_per_image=2)
    p["report"]["posterior_check_t"] = [0, 1, 49]
    write_yaml(p, project / "params.yaml")


def commit(project: Path, message: str) -> None:
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    run(git + ["add", "-A"], project)
    run(git + ["commit", "-qm", message], project)


MODEL, LOSS = "data/mnist/model/checkpoint.pt", "reports/train_mnist/plots/metrics/train/loss.tsv"
CLEAN = "Data and pipelines are up to date."


def importing_stages(project: Path, module: str) -> set[str]:
    """The stages whose script (with ddpm/launch.py for a stage run through it) imports `module`, found by Python's
    own modulefinder: a walk independent of ddpm.pipeline's."""
    stages = {**read_yaml(project / "dvc.yaml")["stages"], **read_yaml(project / "celeba/dvc.yaml")["stages"]}
    return {name for name, stage in stages.items()
            if str(project / module) in own_modules(project, name, "ddpm.launch" in stage["cmd"])}


@pytest.fixture(scope="module")
def project(tmp_path_factory, mnist_dir):
    """A fresh git clone's view of the project, after `dvc exp run -n A` (the MNIST pipeline) on tiny params."""
    dst = tmp_path_factory.mktemp("project")
    for item in ("ddpm", "stages", "celeba", "dvc.yaml", "dvc.lock", "params.yaml", "pyproject.toml", ".dvc",
                 ".dvcignore", ".gitignore"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst / item)
    for scratch in (".dvc/cache", ".dvc/tmp", "celeba/.dvc/cache", "celeba/.dvc/tmp", "celeba/data"):
        shutil.rmtree(dst / scratch, ignore_errors=True)
    (dst / ".dvc/config.local").unlink(missing_ok=True)
    tiny_params(dst, mnist_dir)
    run(["git", "init", "-q"], dst)
    commit(dst, "tiny")
    r = run(DVC + ["exp", "run", "-n", "A"], dst)
    (dst / "exp_run.log").write_text(r.stdout + "\n--- stderr ---\n" + r.stderr)
    return dst


def test_dvc_exp_run_makes_every_output_without_a_warning(project):
    log = (project / "exp_run.log").read_text()
    assert not re.search(r"WARNING|ERROR|failed", log), log[-3000:]
    assert json.loads((project / "data/mnist/source.json").read_text())["source"].startswith("dir:")
    ckpt = load_checkpoint(project / "data/mnist/model/checkpoint.pt")
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2 and set(ckpt["guide"]) == set(ckpt["ema"])
    for folder in ("model", "model_cfg"):  # each training stage's model folder beside its checkpoint
        names = {p.name for p in (project / "data/mnist" / folder).iterdir()}
        assert {"config.json", "model.safetensors", "README.md", "checkpoint.pt"} <= names, names
    assert "guide.safetensors" in {p.name for p in (project / "data/mnist/model").iterdir()}
    assert "autoguidance w = 1" in json.loads((project / "data/mnist/samples/info.json").read_text())["sampler"]
    grid = torch.load(project / "data/mnist/samples/grid.pt", weights_only=True)
    assert grid.shape == (16, 1, 28, 28) and grid.min() >= -1 and grid.max() <= 1
    assert torch.load(project / "data/mnist/samples/eval.pt", weights_only=True).shape == (80, 1, 28, 28)
    for fig in ("loss.png", "samples16.png", "monitor.png", "samples16_judged.png", "histogram.png", "per_class.png",
                "quality.png", "overview.png", "../compare_samplers/samplers.png"):
        assert (project / "reports/figures" / fig).stat().st_size > 1000
    md = (project / "reports/report.md").read_text()
    assert "\\tilde\\beta_t" in md and "figures/samples16.png" in md and "Are they recognizable?" in md
    assert "| ancestral | 50 | 1 | ema | 0 |" in md and "| ddim | 5 | 0 | ema | 1 |" in md and "| dpm++2m | 5 | 0 | ema |" in md and "complete/completion.png" in md and "the MNIST twin" in md
    for png in ("complete/completion.png", "sweep_mnist_cfg/grid.png", "completion_sweep/accuracy_vs_scale.png"):
        assert (project / "reports" / png).stat().st_size > 1000
    table = json.loads((project / "reports/completion_sweep/table.json").read_text())
    assert [r["route"] for r in table] == ["none", "replace", "xt", "xt", "mean", "mean", "mcg", "mcg", "nearest"]
    assert table[-1]["mse_visible"] == 0 and "training digits nearest to it" in md
    assert len(list((project / "reports/train_mnist/plots/images/monitor").glob("epoch_*.png"))) == 2


def test_metrics_show_is_one_narrow_table_and_plots_show_each_plot_once(project):
    r = run(DVC + ["metrics", "show"], project)
    assert r.stderr.strip() == "" and "failed" not in r.stdout
    width = max(len(line) for line in r.stdout.splitlines())
    assert width <= 120, r.stdout
    files = json.loads(run(DVC + ["metrics", "show", "--json"], project).stdout)
    data = next(iter(files.values()))["data"]
    assert list(data) == ["reports/metrics.json"]  # one file: one row
    headline = data["reports/metrics.json"]["data"]
    assert set(headline) == {"minutes", "fid_ratio", "recognizable", "coverage", "completion", "guidance", "judge"}
    assert headline["judge"] > 0.2 and headline["minutes"] > 0  # above chance (0.1) after one tiny epoch
    env = {**stage_env(project), "COLUMNS": "200"}  # a wide terminal; the README's invocation
    shown = subprocess.run(DVC + ["exp", "show", "--only-changed", "--drop", ".*/.*", "--no-pager"], cwd=project,
                           capture_output=True, text=True, env=env).stdout
    assert "fid_ratio" in shown and "judge" in shown and "data/mnist" not in shown and "…" not in shown, shown
    assert max(len(line) for line in shown.splitlines()) <= 130, shown
    detail = json.loads((project / "reports/evaluate/detail.json").read_text())
    assert detail["noise"]["fid_clf"] > detail["floor_real_test"]["fid_clf"]
    r = run(DVC + ["plots", "show", "--json"], project)
    assert "failed" not in r.stderr.lower()
    shown = json.loads(r.stdout)["data"]
    monitor = [k for k in shown if "train_mnist/plots/images/monitor" in k]
    assert len(monitor) == 2, list(shown)  # one entry per monitoring image (2 epochs), not two
    assert sum("loss" in k and "epoch" in k for k in shown) == 1, list(shown)


def test_the_report_page_renders_math_and_images_in_a_browser(project):
    """Headless Chromium opens reports/index.html offline: no raw TeX in the rendered text, every image loads."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("DDPM_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed")
    page = (project / "reports/index.html").read_text()
    probe = """<script>window.addEventListener('load', () => {
      const images = [...document.images];
      const maths = [...document.querySelectorAll('math')];
      const text = document.body.innerText;
      document.body.setAttribute('data-check', JSON.stringify({
        images: images.length, broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
        maths: maths.length, flat: maths.filter(m => m.getBoundingClientRect().height < 5).length,
        tex: text.match(/\\\\[a-zA-Z]+|\\$[^$\\n]{1,60}\\$/g) || []}));
    });</script></body>"""
    checked = project / "reports" / "_check.html"  # beside index.html: the same relative image paths
    checked.write_text(page.replace("</body>", probe))
    r = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={project / 'chromium-profile'}", "--virtual-time-budget=10000",
                        "--dump-dom", checked.as_uri()], capture_output=True, text=True, timeout=120)
    checked.unlink()
    found = re.search(r'data-check="([^"]*)"', r.stdout)
    assert found, r.stdout[-2000:] + r.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["images"] >= 10 and result["broken"] == [], result
    assert result["maths"] >= 20 and result["flat"] == 0 and result["tex"] == [], result


def test_touching_a_module_makes_exactly_the_stages_that_import_it_stale(project):
    module = "ddpm/completion.py"
    mnist = importing_stages(project, module) & set(read_yaml(project / "dvc.yaml")["stages"])
    assert {"completion_sweep", "complete", "report"} <= mnist and "train_mnist" not in mnist
    original = (project / module).read_text()
    (project / module).write_text(original + "\n# touched\n")
    try:
        assert set(json.loads(run(DVC + ["status", "--json"], project).stdout)) == mnist
    finally:
        (project / module).write_text(original)
    assert run(DVC + ["status"], project).stdout.strip() == CLEAN


def test_no_params_value_reaches_a_shell(project, tmp_path):
    """dvc.yaml interpolates no params value into a command; a hostile value is refused by the schema, and runs nothing."""
    assert "${" not in (project / "dvc.yaml").read_text()
    marker = tmp_path / "injected"
    r = run(DVC + ["exp", "run", "-S", f'completion_sweep.scales=[0.1,"1;touch {marker};echo"]', "completion_sweep"],
            project, check=False)
    assert r.returncode != 0 and not marker.exists()
    assert "completion_sweep.scales" in r.stderr + r.stdout
    run(["git", "checkout", "params.yaml"], project)
    run(DVC + ["checkout", "completion_sweep"], project)  # DVC deleted its outputs before the refused run
    assert run(DVC + ["status"], project).stdout.strip() == CLEAN


@pytest.mark.parametrize("spelling, value", [("1e-5", 1e-5), ("1E-3", 1e-3), (".5e-2", 0.005), ("3.0e-4", 3e-4)])
def test_float_spellings_are_read_as_dvc_reads_them(project, spelling, value):
    """Every float a user (or `dvc exp run -S`) writes is accepted by the real stage entry point: the launcher
    parses the stage's params exactly as the stage does, and prints the command it would run."""
    text = (project / "params.yaml").read_text()
    lr = r"(?m)^(train_mnist:\n(?:  .*\n)*?  lr:)(?: .*)?\n(?:    .*\n)*"  # one value, or one per profile
    (project / "params.yaml").write_text(re.sub(lr, rf"\g<1> {spelling}\n", text, count=1))
    try:
        r = run([sys.executable, "-c", "from ddpm import params; print(params.load_stage('train_mnist')['train_mnist']['lr'])"],
                project)
        assert float(r.stdout) == value
        r = run([sys.executable, "-m", "ddpm.launch", "train_mnist", "--dry-run"], project)
        assert r.stdout.split()[-1] == "stages/train_mnist.py"
    finally:
        (project / "params.yaml").write_text(text)


def test_set_from_the_command_line_as_dvc_writes_it(project):
    """`dvc exp run -S judge.lr=1e-5`: DVC writes `lr: 1e-05` (YAML 1.2; PyYAML would read a string), and the stage
    accepts it; an integer written as 1e0 is an integer."""
    r = run(DVC + ["exp", "run", "-S", "judge.lr=1e-5", "-S", "judge.epochs=1e0", "judge"], project)
    assert "error" not in r.stderr.lower()
    assert "lr: 1e-05" in (project / "params.yaml").read_text()
    assert read_yaml(project / "params.yaml")["judge"]["lr"] == 1e-5
    run(["git", "checkout", "params.yaml"], project)
    assert "Stage 'judge' is cached - skipping run" in run(DVC + ["repro", "judge"], project).stdout  # the run-cache
    assert run(DVC + ["status"], project).stdout.strip() == CLEAN


def test_touching_the_unet_leaves_the_download_and_the_judge_up_to_date(project):
    stale = importing_stages(project, "ddpm/unet.py") - {s for s in read_yaml(project / "celeba/dvc.yaml")["stages"]}
    assert "download_mnist" not in stale and "judge" not in stale and "train_mnist" in stale
    original = (project / "ddpm/unet.py").read_text()
    (project / "ddpm/unet.py").write_text(original + "\n# touched\n")
    try:
        assert set(json.loads(run(DVC + ["status", "--json"], project).stdout)) == stale
    finally:
        (project / "ddpm/unet.py").write_text(original)
    assert run(DVC + ["status"], project).stdout.strip() == CLEAN


def test_a_version_bump_stales_no_stage(project):
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(re.sub(r'(?m)^version = ".*"$', 'version = "99.0.0"', text))
    try:
        assert run(DVC + ["status"], project).stdout.strip() == CLEAN
    finally:
        (project / "pyproject.toml").write_text(text)


def test_switching_the_profile_stales_exactly_the_stages_whose_settings_differ(project):
    """`dvc exp run -S profile=cpu` writes one key; DVC then re-runs the stages that read a per-profile value, not the
    download, the judge or the evaluation (whose own settings are shared)."""
    text = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(text.replace("profile: gpu\n", "profile: cpu\n", 1))
    try:
        stale = set(json.loads(run(DVC + ["status", "--json"], project).stdout))
    finally:
        (project / "params.yaml").write_text(text)
    assert stale == {"train_mnist", "train_mnist_cfg", "sample", "compare_samplers", "completion_sweep", "complete",
                     "sweep_mnist_cfg", "report"}


def test_an_experiment_comes_back_whole_and_is_shared_through_a_remote(project, tmp_path):
    """exp A, exp B (another learning rate); apply A: A's bytes, nothing to run. B's settings again: the run-cache
    brings B's model and loss history back, no training. Then push to a remote, clone, pull: up to date."""
    a_model, a_loss = (project / MODEL).read_bytes(), (project / LOSS).read_text()
    run(DVC + ["exp", "run", "-n", "B", "-S", "train_mnist.lr=0.003", "train_mnist"], project)
    b_model, b_loss = (project / MODEL).read_bytes(), (project / LOSS).read_text()
    assert b_model != a_model and b_loss != a_loss
    run(DVC + ["exp", "apply", "A"], project)
    assert (project / MODEL).read_bytes() == a_model and (project / LOSS).read_text() == a_loss
    assert run(DVC + ["status"], project).stdout.strip() == CLEAN
    assert "Running stage" not in run(DVC + ["repro"], project).stdout
    out = run(DVC + ["exp", "run", "-S", "train_mnist.lr=0.003", "train_mnist"], project).stdout
    assert "Stage 'train_mnist' is cached - skipping run" in out and "Running stage 'train_mnist'" not in out
    assert (project / MODEL).read_bytes() == b_model and (project / LOSS).read_text() == b_loss
    run(DVC + ["exp", "apply", "A"], project)
    run(DVC + ["remote", "add", "-d", "shared", str(tmp_path / "remote")], project)
    commit(project, "experiment A, its remote")
    run(DVC + ["push"], project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    run(DVC + ["pull"], clone)
    assert (clone / MODEL).read_bytes() == a_model
    assert run(DVC + ["status"], clone).stdout.strip() == CLEAN
    run(CLI + ["sample", "data/mnist/model", "-n", "2", "--steps", "3", "-o", str(tmp_path / "pulled.png")], clone)


def test_the_model_folder_alone_samples_completes_loads_and_exports(project, tmp_path):
    """In fresh processes, from a copy of the folder (no params.yaml, no pipeline): the CLI samples (the twin by its
    label too) and completes a test digit, load_pretrained loads it, diffusers samples its export."""
    for folder in ("model", "model_cfg"):
        shutil.copytree(project / "data/mnist" / folder, tmp_path / folder)
    (tmp_path / "model" / "checkpoint.pt").unlink()  # what a user keeps: the safetensors, the config, the card
    run(CLI + ["sample", "model", "-n", "4", "--steps", "5", "--autoguidance", "1", "-o", "samples.npz"], tmp_path)
    run(CLI + ["sample", "model_cfg", "-n", "3", "--steps", "5", "--label", "3", "--guidance", "2", "-o", "threes.pt"],
        tmp_path)
    digit = torch.load(project / "data/mnist/samples/grid.pt", weights_only=True)[0]
    Image.fromarray(((digit[0] + 1) * 127.5).round().byte().numpy()).save(tmp_path / "digit.png")
    run(CLI + ["complete", "model", "--image", "digit.png", "--hide", "bottom", "-n", "2", "--steps", "5",
               "-o", "completed.png"], tmp_path)
    code = ("from ddpm.pretrained import load_pretrained; import torch; m, d, c = load_pretrained('model'); "
            "print(d.T, c['training']['images_seen'], m(torch.zeros(1, 1, 28, 28), torch.tensor([3])).shape)")
    assert run([sys.executable, "-c", code], tmp_path).stdout.split() == ["50", "512", "torch.Size([1,", "1,", "28,", "28])"]
    run(CLI + ["export", "model", "--to", "diffusers", "exported"], tmp_path)
    code = ("import diffusers, torch, ddpm.diffusers_unet; p = diffusers.DDPMPipeline.from_pretrained('exported'); "
            "print(p(batch_size=2, num_inference_steps=50, generator=torch.Generator().manual_seed(0), output_type='np')"
            ".images.shape)")
    assert run([sys.executable, "-c", code], tmp_path).stdout.strip() == "(2, 28, 28, 1)"


def test_a_queued_grid_reuses_the_cached_download_and_judge(project):
    for lr in (0.004, 0.005):
        run(DVC + ["exp", "run", "--queue", "-S", f"train_mnist.lr={lr}", "train_mnist"], project)
    run(DVC + ["queue", "start", "-j", "1"], project)
    try:
        for _ in range(240):
            status = run(DVC + ["queue", "status"], project).stdout
            if not re.search(r"Queued|Running", status):
                break
            time.sleep(2)
    finally:
        run(DVC + ["queue", "stop"], project, check=False)
    done = re.findall(r"^\w+\s+(\S+)\s+.*\bSuccess\b", status, re.M)
    assert len(done) == 2, status
    for name in done:
        log = run(DVC + ["queue", "logs", name], project).stdout
        for stage in ("download_mnist", "judge"):
            assert re.search(rf"Stage '{stage}' (didn't change, skipping|is cached - skipping run)", log), log[-2000:]
        assert "Running stage 'train_mnist'" in log


def test_more_epochs_resume_instead_of_restarting_also_under_torchrun(project):
    p = read_yaml(project / "params.yaml")
    p["train_mnist"]["epochs"] = 3
    p["train_mnist"]["nproc"] = 2  # and under torchrun (2 gloo processes), through the stage's launcher
    write_yaml(p, project / "params.yaml")
    guide = load_checkpoint(project / "data/mnist/model/checkpoint.pt")["guide"]  # taken at step 3, in epoch 1
    out = run(DVC + ["repro", "train_mnist"], project).stdout
    assert "resuming after epoch 2" in out and "× 2 processes" in out
    resumed = load_checkpoint(project / "data/mnist/model/checkpoint.pt")
    assert resumed["epoch"] == 3 and all(torch.equal(resumed["guide"][k], v) for k, v in guide.items())
