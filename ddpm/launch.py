"""python -m ddpm.launch SECTION SCRIPT [ARGS…]: a stage script as one process, or under torchrun.

SECTION.nproc in params.yaml (e.g. train.nproc) chooses: 1 runs `python SCRIPT`; N > 1 runs
`torchrun --standalone --nproc_per_node=N SCRIPT` (one process per GPU on this machine, or N gloo
processes on a CPU). dvc.yaml's training and sampling stages call this, so `dvc exp run -S train.nproc=8`
is all it takes on an 8-GPU machine. Several machines: run torchrun yourself (README).
"""
from __future__ import annotations

import os
import sys

from . import params
from .cli import run_stage
from .distributed import check_launch


def command(section: str, script: str, args: list[str]) -> list[str]:
    """The command line that runs `script` with `section`'s nproc processes (checked first)."""
    p = params.load([section])[section]
    if p["nproc"] == 1:
        return [sys.executable, script, *args]
    check_launch(p["nproc"], p["batch_size"] if section.endswith("train") else None, p["device"], section)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={p['nproc']}", script, *args]


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: python -m ddpm.launch SECTION SCRIPT [ARGS…]  (e.g. train stages/train_mnist.py)")
    cmd = command(sys.argv[1], sys.argv[2], sys.argv[3:])
    sys.stdout.flush()
    os.execv(cmd[0], cmd)  # the stage's exit status is the script's


if __name__ == "__main__":
    run_stage(main)
