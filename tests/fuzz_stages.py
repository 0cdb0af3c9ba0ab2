"""Fuzz the stage entry points (not only the validator): each case sets one params key to a bad or extreme value and
runs a stage that reads it, in-process, on a tiny project; the stage must succeed with finite outputs or stop with
exactly one line `error: …` (no traceback, no NaN written).

    python -m tests.fuzz_stages --n 200            # from the repository root; prints a summary, exit 1 on a failure
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import random
import runpy
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from ddpm.params import OPTIONAL, SCHEMA, read_yaml, stage_sections
from tests.conftest import write_yaml

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["download_mnist", "judge", "train_mnist", "train_mnist_cfg", "sample", "evaluate", "compare_samplers",
         "completion_sweep", "complete", "sweep_mnist_cfg", "report"]
CHEAP_TRAINING = {"lr", "grad_clip", "ema_decay", "warmup_steps", "p_uncond", "monitor_guidance", "dropout"}


def tiny_params(p: dict[str, Any], mnist_dir: Path) -> dict[str, Any]:
    p["download_mnist"]["sources"] = [f"dir:{mnist_dir}"]
    p["diffusion"]["T"] = 20
    p["model"].update(channels=8, channel_mults=[1, 2], num_res_blocks=1, attention_levels=[1], heads=2, groups=4)
    p["train_mnist"].update(epochs=1, max_images=128, batch_size=64, log_every=1, monitor_n=4, monitor_steps=3,
                            monitor_judge_n=8, warmup_steps=1)
    p["train_mnist_cfg"].update(epochs=1)
    p["judge"].update(epochs=1, max_images=600, min_accuracy=0.0, holdout=100)
    p["sample"].update(n_grid=4, n_eval=20, sampler="ddim", steps=3, batch_size=20)
    p["compare_samplers"].update(n=10, batch_size=10, rows=[{"sampler": "dpm++2m", "steps": 2, "eta": 0.0, "weights": "ema"}])
    p["completion_sweep"].update(sampler="ddim", steps=3, images=2, completions=2, scales=[0.1], batch_size=8)
    p["complete"].update(sampler="ddim", steps=3, n_per_image=2)
    p["sweep_mnist_cfg"].update(guidance_scales=[1.0], n_per_prompt=2, sampler="ddim", steps=3, batch_size=20,
                                prompts=["a handwritten 1", "a handwritten 7"])
    p["report"]["posterior_check_t"] = [0, 19]
    return p


def bad_values(key: str, rng: random.Random) -> Any:
    """A value a user could type by mistake, or an extreme one the schema may accept."""
    invalid = [None, "", "fast", -1, 0, -0.5, 10**30, 1e300, -1e300, float("nan"), float("inf"), True, [], [1, "a"],
               {"a": 1}, "1e-5", 1.5, 2**63]
    extreme = {"lr": [1.0, 1e-12], "grad_clip": [1e-9, 1e9], "ema_decay": [0.0, 0.999999], "warmup_steps": [0, 10**9],
               "scale": [100.0, 0.0], "scales": [[100.0], [1e-9]], "guidance_scales": [[100.0], [0.0]],
               "monitor_guidance": [100.0], "eta": [0.0, 1.0], "steps": [1], "dropout": [0.99], "p_uncond": [0.0, 1.0],
               "blur_sigma": [1e-9, 50.0], "batch_size": [1, 10**6], "n_eval": [2], "n": [2]}
    pool = invalid + extreme.get(key, []) * 3
    return rng.choice(pool)


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_stage(project: Path, stage: str) -> tuple[int, str]:
    """Run stages/<stage>.py in this process, in `project`; (exit status, stderr)."""
    err = io.StringIO()
    code = 0
    with working_directory(project), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            runpy.run_path(str(project / "stages" / f"{stage}.py"), run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException as e:  # noqa: BLE001 - a traceback is what the fuzzer looks for
            code, err = 99, io.StringIO(f"Traceback: {type(e).__name__}: {e}")
    return code, err.getvalue()


def finite_outputs(project: Path) -> str | None:
    """The first output with NaN: a JSON file that is not strict, or a saved tensor with non-finite values."""
    for path in project.glob("reports/**/*.json"):
        try:
            json.loads(path.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except ValueError:
            return str(path)
    for path in project.glob("data/mnist/samples/*.pt"):
        x = torch.load(path, weights_only=True)
        if isinstance(x, torch.Tensor) and not torch.isfinite(x).all():
            return str(path)
    return None


def build(workdir: Path, mnist_dir: Path) -> Path:
    """A tiny project in which every MNIST stage has run once."""
    project = workdir / "project"
    for item in ("ddpm", "stages", "params.yaml"):
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, project / item)
    write_yaml(tiny_params(read_yaml(project / "params.yaml"), mnist_dir), project / "params.yaml")
    for stage in ORDER:
        code, err = run_stage(project, stage)
        if code:
            raise RuntimeError(f"building the fuzz project: {stage} failed: {err}")
    return project


def cases(n: int, seed: int) -> Iterator[tuple[str, str, Any]]:
    """(stage, 'section.key', value): n cases, each stage reading the section it mutates."""
    rng = random.Random(seed)
    readers = {section: [s for s in ORDER if section in stage_sections(s)] for section in SCHEMA}
    keys = [(s, k) for s in SCHEMA if readers[s] for k in [*SCHEMA[s], *sorted(OPTIONAL.get(s, ()))]]
    made = 0
    while made < n:
        section, key = rng.choice(keys)
        stage = rng.choice(readers[section])
        if stage.startswith("train") and key not in CHEAP_TRAINING and section not in ("runtime",):
            value = rng.choice([None, "fast", -1, float("nan"), 10**30, [], {"a": 1}])  # refused before training
        else:
            value = bad_values(key, rng)
        if key == "nproc" and isinstance(value, int) and not isinstance(value, bool) and value > 1:
            continue  # in-process runs cannot start torchrun
        made += 1
        yield stage, f"{section}.{key}", value


def fuzz(project: Path, n: int, seed: int, log: Any = sys.stdout) -> list[str]:
    """Run n cases; return the failures (tracebacks, more than one line, NaN outputs)."""
    base = read_yaml(project / "params.yaml")
    failures = []
    for i, (stage, key, value) in enumerate(cases(n, seed)):
        section, name = key.split(".")
        p = copy.deepcopy(base)
        p[section][name] = value
        write_yaml(p, project / "params.yaml")
        t0 = time.time()
        code, err = run_stage(project, stage)
        lines = err.strip().splitlines()
        verdict = "ok" if code == 0 else "refused"
        if code not in (0, 1) or (code == 1 and (len(lines) != 1 or not lines[0].startswith("error: "))):
            verdict = "FAIL"
            failures.append(f"{stage} with {key} = {value!r}: exit {code}: {err.strip()[:300]}")
        elif code == 0 and (bad := finite_outputs(project)):
            verdict = "FAIL"
            failures.append(f"{stage} with {key} = {value!r}: wrote a non-finite {bad}")
        print(f"{i + 1:4d} {stage:18s} {key} = {value!r:.40}: {verdict} ({time.time() - t0:.1f} s) "
              f"{lines[0][:90] if lines else ''}", file=log, flush=True)
    write_yaml(base, project / "params.yaml")
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mnist", type=Path, default=ROOT / "data" / "mnist" / "raw", help="a folder with the IDX files")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        project = build(Path(work), a.mnist.resolve())
        failures = fuzz(project, a.n, a.seed)
    print(f"\n{a.n} cases: {len(failures)} failures" + "".join(f"\n  {f}" for f in failures))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
