"""python -m ddpm.launch STAGE: the stage's script, stages/STAGE.py, as one process or under torchrun.

The stage's nproc (runtime.nproc, or its own section's nproc) chooses: 1 runs `python stages/STAGE.py`; N > 1 runs
`torchrun --standalone --nproc_per_node=N stages/STAGE.py` (one process per GPU on this machine, or N gloo processes
on a CPU). dvc.yaml's training and sampling stages call this, so `dvc exp run -S runtime.nproc=8` is all it takes on
an 8-GPU machine. Several machines: run torchrun yourself (docs/distributed.md).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from . import params
from .stage import run_stage
from .distributed import check_launch


STAGES = Path(__file__).resolve().parents[1] / "stages"  # beside the package, in the checkout DVC runs
if not STAGES.is_dir():  # a package installed without its checkout: the stages of the current folder
    STAGES = Path("stages")


def command(stage: str, stages: Path = STAGES) -> list[str]:
    """The command line that runs stages/<stage>.py with the stage's nproc processes (checked first). The stage runs
    in the current folder, the DVC project's (the repository root, or celeba/)."""
    p = params.load_stage(stage)
    script = os.path.relpath(stages / f"{stage}.py")
    settings = p[stage]
    if settings["nproc"] == 1:
        return [sys.executable, script]
    batch = settings["batch_size"] if stage.startswith("train") else None
    check_launch(settings["nproc"], batch, settings["device"], stage)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={settings['nproc']}", script]


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--dry-run"]
    if len(args) != 1:
        raise SystemExit("usage: python -m ddpm.launch STAGE [--dry-run]  (e.g. train_mnist: runs stages/train_mnist.py)")
    cmd = command(args[0])
    if "--dry-run" in sys.argv:  # params checked, the command printed, nothing run
        print(" ".join(cmd))
        return
    sys.stdout.flush()
    os.execv(cmd[0], cmd)  # the stage's exit status is the script's


if __name__ == "__main__":
    run_stage(main)
