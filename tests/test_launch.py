"""ddpm/launch.py: the command line it builds for a stage's nproc, the script it finds, what main() runs or refuses."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ddpm import launch
from ddpm.distributed import DistributedError
from ddpm.params import ParamError, read_yaml
from tests.conftest import write_yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with the shipped params.yaml and a stages/ folder, made the current one; returns a writer of
    params.yaml with some sections updated."""
    (tmp_path / "stages").mkdir()
    monkeypatch.chdir(tmp_path)

    def write(**updates):
        p = read_yaml(ROOT / "params.yaml")
        for section, values in updates.items():
            p[section].update(values)
        write_yaml(p, tmp_path / "params.yaml")
        return tmp_path
    write()
    return write


def test_the_stages_folder_is_the_checkouts():
    assert launch.STAGES == ROOT / "stages" and (launch.STAGES / "train_mnist.py").is_file()


def test_one_process_runs_the_script_with_this_python(project):
    assert launch.command("sample", Path("stages")) == [sys.executable, "stages/sample.py"]
    assert launch.command("train_mnist", project() / "stages") == [sys.executable, "stages/train_mnist.py"]
    # the default folder, relative to the current one (the DVC project's)
    assert launch.command("sample") == [sys.executable, os.path.relpath(ROOT / "stages" / "sample.py")]


def test_more_processes_run_under_torchrun(project):
    project(sample={"nproc": 2, "device": "cpu"})
    assert launch.command("sample", Path("stages")) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "stages/sample.py"]
    project(runtime={"nproc": 2, "device": "cpu"})  # runtime's nproc, where the stage's section does not override it
    assert launch.command("train_mnist", Path("stages"))[-2:] == ["--nproc_per_node=2", "stages/train_mnist.py"]
    project(runtime={"nproc": 2, "device": "cpu"}, sample={"nproc": 1})  # the stage's own value wins
    assert launch.command("sample", Path("stages")) == [sys.executable, "stages/sample.py"]


def test_a_launch_is_checked_before_it_starts(project):
    project(train_mnist={"nproc": 2, "device": "cpu", "batch_size": 129})
    with pytest.raises(DistributedError, match=r"^train_mnist.batch_size = 129 \(the global batch\) does not split"):
        launch.command("train_mnist", Path("stages"))
    project(sample={"nproc": 4096, "device": "cpu", "batch_size": 129})  # a sampling stage's batch need not split
    with pytest.raises(DistributedError, match=r"^sample.nproc = 4096 CPU processes but this machine has"):
        launch.command("sample", Path("stages"))
    project(sample={"nproc": 0})
    with pytest.raises(ParamError, match=r"sample.nproc = 0: must be an integer in \[1, 4096\]"):
        launch.command("sample", Path("stages"))
    with pytest.raises(ParamError, match="^unknown stage 'sampel'; known stages: download_mnist, "):
        launch.command("sampel", Path("stages"))


def test_main_execs_the_command_or_prints_it(project, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(os, "execv", lambda path, args: calls.append((path, args)))
    monkeypatch.setattr(sys, "argv", ["launch", "sample"])
    launch.main()
    expected = launch.command("sample")
    assert calls == [(sys.executable, expected)] and capsys.readouterr().out == ""
    monkeypatch.setattr(sys, "argv", ["launch", "--dry-run", "sample"])
    launch.main()
    assert calls == [(sys.executable, expected)] and capsys.readouterr().out == " ".join(expected) + "\n"


@pytest.mark.parametrize("argv", [[], ["sample", "judge"], ["--dry-run"]])
def test_main_refuses_anything_but_one_stage(monkeypatch, argv):
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("nothing may run"))
    monkeypatch.setattr(sys, "argv", ["launch", *argv])
    with pytest.raises(SystemExit, match=r"^usage: python -m ddpm.launch STAGE \[--dry-run\]"):
        launch.main()


def test_the_module_refuses_an_unknown_stage_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ddpm.launch", "nosuch", "--dry-run"], cwd=tmp_path, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("error: unknown stage 'nosuch'; known stages: ") and r.stderr.count("\n") == 1
