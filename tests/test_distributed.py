"""torchrun with gloo on 127.0.0.1: two processes train and sample like one; only rank 0 writes; bad launches."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddpm import distributed
from ddpm.distributed import DistributedError, World, check_launch
from ddpm.checkpoint import load_checkpoint
from ddpm.launch import command

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "scripts"
EPOCHS = "6"  # 35 steps of a global batch of 16 (the last of each epoch: 6)
TOLERANCE = 1e-5  # max |w_2proc − w_1proc| after the run: only the order of the gradient sum differs


def run(nproc: int, script: str, *args: str, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    cmd = [sys.executable, str(SCRIPTS / script), *args]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] + cmd[1:]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if popen:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, tree = [pid], []
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def max_weight_difference(a: Path, b: Path) -> float:
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert sa["epoch"] == sb["epoch"] and sa["step"] == sb["step"]
    return max((sa[k][name] - sb[k][name]).abs().max().item() for k in ("model", "ema") for name in sa[k])


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    ckpt = tmp_path_factory.mktemp("one") / "checkpoint.pt"
    out = run(1, "train_tiny.py", str(ckpt), EPOCHS, "0.0")
    assert out.returncode == 0, out.stderr[-2000:]
    return ckpt


def test_two_processes_train_like_one(one_process, tmp_path):
    out = run(2, "train_tiny.py", str(tmp_path / "checkpoint.pt"), EPOCHS, "0.0")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    diff = max_weight_difference(one_process, tmp_path / "checkpoint.pt")
    print(f"max |w_2 − w_1| after {EPOCHS} epochs: {diff:.2e}")
    assert diff < TOLERANCE
    one, two = load_checkpoint(one_process)["history"], load_checkpoint(tmp_path / "checkpoint.pt")["history"]
    assert [h["loss"] for h in two] == pytest.approx([h["loss"] for h in one], rel=1e-5)
    # only rank 0 wrote: rank 1 never saved, and nothing but the checkpoint and its predecessor is there
    assert f"DONE rank 0 of 2 saved {EPOCHS} times" in out.stdout and "DONE rank 1 of 2 saved 0 times" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]


def test_killed_under_torchrun_resumes_under_torchrun_and_under_one_process(one_process, tmp_path):
    killed = tmp_path / "killed" / "checkpoint.pt"
    proc = run(2, "train_tiny.py", str(killed), EPOCHS, "0.0", bufsize=1)
    deadline = time.time() + 300
    while not killed.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    kill_tree(proc.pid)  # torchrun and both workers
    proc.wait()
    time.sleep(0.5)
    done = load_checkpoint(killed)["epoch"]
    assert 1 <= done < int(EPOCHS), f"the kill came too late (epoch {done})"
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "checkpoint.pt").write_bytes(killed.read_bytes())
    for nproc, ckpt in ((2, killed), (1, tmp_path / "copy" / "checkpoint.pt")):
        out = run(nproc, "train_tiny.py", str(ckpt), EPOCHS, "0.0")
        assert out.returncode == 0 and f"READY {done}" in out.stdout, (out.stdout + out.stderr)[-3000:]
        assert max_weight_difference(one_process, ckpt) < TOLERANCE, nproc


@pytest.mark.parametrize("kind", ["plain", "context"])
def test_sharded_sampling_gives_the_same_images(tmp_path, kind):
    """Evaluation batches (plain) and guidance sweeps (a context per image, CFG): 2 ranks = 1 process."""
    outs = {}
    for nproc in (1, 2):
        out = run(nproc, "sample_tiny.py", str(tmp_path / f"{nproc}.pt"), kind)
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        outs[nproc] = torch.load(tmp_path / f"{nproc}.pt", weights_only=True)
    assert outs[1].shape == (7, 1, 28, 28)
    assert torch.allclose(outs[1], outs[2], atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.pt", "2.pt"]  # rank 1 wrote nothing


def test_shares_cover_a_batch_in_order():
    for n in (0, 1, 7, 16):
        for size in (1, 2, 3):
            parts = [range(n)[World(r, size).share(n)] for r in range(size)]
            assert [i for p in parts for i in p] == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_bad_launches_are_one_line(monkeypatch):
    with pytest.raises(DistributedError, match=r"train_mnist.batch_size = 129 \(the global batch\) does not split evenly over train_mnist.nproc = 2"):
        check_launch(2, 129, "cpu")
    with pytest.raises(DistributedError, match="sample.nproc = 10000 CPU processes but this machine has"):
        check_launch(10_000, None, "cpu", "sample")
    assert command("sample")[1:] == ["stages/sample.py"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "9")  # nobody listens: the rendezvous cannot be reached
    with pytest.raises(DistributedError, match=r"rank 1: cannot join the process group at 127.0.0.1:9 .*rdzv-endpoint"):
        distributed.init("cpu", timeout_s=2)
