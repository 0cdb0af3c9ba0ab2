"""Behaviour unchanged? Run the test configuration (tests/test_pipeline.py's tiny params) with `dvc repro` in copies
of two checkouts and compare every metric, table and model weight, timings aside.

usage: python tests/scripts/compare_test_config.py OLD_CHECKOUT NEW_CHECKOUT WORKDIR
       (e.g. git worktree add /tmp/old <rev>; the current tree as NEW)
"""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

TIMING = ("seconds", "minutes", "images_per_s", "ms_per_image")
ITEMS = ("ddpm", "stages", "celeba", "dvc.yaml", "dvc.lock", "params.yaml", "pyproject.toml", ".dvc", ".dvcignore",
         ".gitignore")


def run(src: Path, work: Path, mnist: Path) -> dict:
    """Copy src's project to work, set the tiny params, `dvc repro`; every JSON, TSV and safetensors file's content."""
    sys.path.insert(0, str(src))
    from tests.conftest import stage_env
    from tests.test_pipeline import DVC, commit, tiny_params
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for item in ITEMS:
        (shutil.copytree if (src / item).is_dir() else shutil.copy)(src / item, work / item)
    for scratch in (".dvc/cache", ".dvc/tmp", "celeba/.dvc/cache", "celeba/.dvc/tmp", "celeba/data"):
        shutil.rmtree(work / scratch, ignore_errors=True)
    (work / ".dvc/config.local").unlink(missing_ok=True)
    tiny_params(work, mnist)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    commit(work, "tiny")
    subprocess.run(DVC + ["repro"], cwd=work, env=stage_env(work), check=True, capture_output=True)
    sys.path.remove(str(src))
    for name in [m for m in sys.modules if m == "tests" or m.startswith(("tests.", "ddpm"))]:
        del sys.modules[name]
    out = {}
    for f in sorted(work.rglob("*")):
        rel = f.relative_to(work).as_posix()
        if rel.startswith((".dvc", "celeba", ".git")) or not f.is_file():
            continue
        if f.suffix == ".json":
            out[rel] = json.loads(f.read_text())
        elif f.suffix == ".safetensors":
            out[rel] = hashlib.md5(f.read_bytes()).hexdigest()
        elif f.suffix == ".tsv" and not any(t in f.name for t in TIMING):
            out[rel] = f.read_text()
    return out


def untimed(x):
    if isinstance(x, dict):
        return {k: untimed(v) for k, v in x.items() if not any(t in k for t in TIMING)}
    return [untimed(v) for v in x] if isinstance(x, list) else x


def main() -> int:
    old, new, work = (Path(a).resolve() for a in sys.argv[1:4])
    from ddpm.data import download_mnist
    mnist = work / "mnist"
    if not mnist.exists():
        download_mnist(mnist, ["pypi", "pypi-sdist"])
    a, b = run(old, work / "old", mnist), run(new, work / "new", mnist)
    differ = sorted(k for k in set(a) | set(b) if untimed(a.get(k)) != untimed(b.get(k)))
    print(f"{len(a)} and {len(b)} files compared; differing (timings aside): {differ or 'none'}")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
