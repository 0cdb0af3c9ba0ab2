"""ddpm/stage.py: run_stage turns an expected error into one line on stderr and exit status 1, and nothing else."""
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ddpm.distributed import DistributedError
from ddpm.io import DataError
from ddpm.stage import EXPECTED, run_stage
from ddpm.validators import ParamError

ROOT = Path(__file__).resolve().parents[1]


def raising(error):
    def main():
        raise error
    return main


@pytest.mark.parametrize("error", [
    ParamError("params.yaml: sample.steps = 0: must be an integer ≥ 1"), DataError("raw: MD5 differs"),
    FileNotFoundError("data/mnist/model: not found"), ValueError("bad value"), FloatingPointError("NaN images"),
    RuntimeError("CUDA out of memory"), OSError("disk full"), MemoryError("too big"), DistributedError("rank 1: lost"),
])
def test_an_expected_error_is_one_line_and_status_1(capsys, error):
    with pytest.raises(SystemExit) as e:
        run_stage(raising(error))
    assert e.value.code == 1
    out, err = capsys.readouterr()
    assert err == f"error: {error}\n" and out == ""


def test_only_the_first_line_of_a_message_and_the_type_of_an_empty_one(capsys):
    with pytest.raises(SystemExit):
        run_stage(raising(ValueError("first line\n  second line\nthird")))
    assert capsys.readouterr().err == "error: first line\n"
    with pytest.raises(SystemExit):
        run_stage(raising(MemoryError()))
    assert capsys.readouterr().err == "error: MemoryError\n"


def test_a_successful_main_returns_without_exiting(capsys):
    calls = []
    assert run_stage(lambda: calls.append(1)) is None
    assert calls == [1] and capsys.readouterr().err == ""


@pytest.mark.parametrize("error", [TypeError("a bug"), KeyError("x"), AssertionError("broken invariant"),
                                   KeyboardInterrupt(), SystemExit(3)])
def test_anything_else_propagates_unchanged(capsys, error):
    assert not isinstance(error, EXPECTED)
    with pytest.raises(type(error)) as e:
        run_stage(raising(error))
    assert e.value is error and capsys.readouterr().err == ""


SCRIPT = """
import sys
from ddpm.stage import run_stage
def main():
    raise {{"bug": TypeError("unsupported operand"), "interrupt": KeyboardInterrupt(),
            "expected": OSError("no space left")}}[sys.argv[1]]
run_stage(main)
"""


def run_script(kind):
    return subprocess.run([sys.executable, "-c", SCRIPT.format(), kind], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_in_a_real_process():
    r = run_script("expected")
    assert (r.returncode, r.stderr) == (1, "error: no space left\n")
    r = run_script("bug")  # a bug keeps its traceback for the report
    assert r.returncode == 1 and r.stderr.startswith("Traceback (most recent call last):")
    assert r.stderr.rstrip().endswith("TypeError: unsupported operand") and 'stage.py", line' in r.stderr
    r = run_script("interrupt")  # Ctrl-C: Python ends the process by SIGINT (a shell shows 130), with a traceback
    assert r.returncode == -signal.SIGINT and r.stderr.rstrip().endswith("KeyboardInterrupt")
