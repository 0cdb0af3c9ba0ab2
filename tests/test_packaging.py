"""The distribution: a wheel that installs as a library, needs only its core dependencies to import, sample and load
a model folder, ships the `ddpm` command and none of the pipeline's files."""
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = {"torch", "numpy", "tqdm", "safetensors", "pillow"}
EXTRAS_MODULES = ["dvc", "dvclive", "yaml", "pandas", "matplotlib", "seaborn", "markdown_it", "mdit_py_plugins",
                  "latex2mathml", "ruamel", "scipy", "torchvision", "open_clip", "diffusers"]
CORE_USE = """
import sys
class Refuse:  # the extras' modules: importing one would mean the core needs an extra
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'{name} is not a core dependency')
sys.meta_path.insert(0, Refuse())
import torch, ddpm
assert sys.argv[2] in ddpm.__file__, ddpm.__file__  # the wheel's copy, not the checkout's
from ddpm.unet import UNet
from ddpm.pretrained import load_pretrained, save_pretrained
from ddpm.samplers import sample
from ddpm.cli import main
unet = UNet(channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), heads=2, groups=4, T=20)
diffusion = {"T": 20, "schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "prediction": "eps",
             "weighting": "none", "snr_gamma": 5.0}
save_pretrained(sys.argv[1] + "/m", unet, diffusion, sample_shape=(1, 28, 28))
model, d, config = load_pretrained(sys.argv[1] + "/m")
assert sample(d, model, 2, (1, 28, 28), sampler="ddim", steps=3).shape == (2, 1, 28, 28)
assert main(["sample", sys.argv[1] + "/m", "-n", "2", "--steps", "3", "-o", sys.argv[1] + "/g.png"]) == 0
print("core ok", ddpm.__version__)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return next(out.glob("ddpm_dvc-*.whl"))


def test_the_wheel_declares_only_the_core_as_required_and_ships_the_command(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = Parser().parsestr(z.read(next(n for n in names if n.endswith("/METADATA"))).decode())
        entry_points = z.read(next(n for n in names if n.endswith("/entry_points.txt"))).decode()
    required = {r.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
                for r in meta.get_all("Requires-Dist") if "extra ==" not in r}
    assert required == CORE
    assert {"pipeline", "clip", "bench", "dev"} <= set(meta.get_all("Provides-Extra"))
    assert meta["Name"] == "ddpm-dvc" and meta["License-Expression"] == "MIT" and any("LICENSE" in n for n in names)
    assert "ddpm = ddpm.cli:main" in entry_points
    assert "ddpm/templates/report.md.j2" in names and not [n for n in names if n.startswith(("stages/", "tests/"))]


def test_a_fresh_environment_with_the_core_only_imports_samples_and_loads(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with zipfile.ZipFile(wheel) as z:  # a pure wheel installs by unpacking it into site-packages
        z.extractall(site)
    # the core dependencies come from this environment's site-packages (a path entry: its .pth files, which would
    # add this checkout's editable ddpm, are not run); the extras' modules are refused by the script
    env = {"PYTHONPATH": sysconfig.get_paths()["purelib"], "PATH": "/usr/bin:/bin"}
    script = "BLOCKED = " + repr(set(EXTRAS_MODULES)) + "\n" + CORE_USE
    r = subprocess.run([str(python), "-c", script, str(tmp_path), site], capture_output=True, text=True, env=env,
                       cwd=tmp_path)  # not the checkout: -c puts the current folder first on sys.path
    assert r.returncode == 0 and "core ok" in r.stdout, r.stdout[-2000:] + r.stderr[-3000:]
    assert (tmp_path / "g.png").stat().st_size > 100
