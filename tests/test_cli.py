"""The `ddpm` command on a model folder: it samples, completes, exports; and a fuzz of bad invocations, each ending
in one line on stderr, a documented exit status, no traceback and no file but -o."""
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm.cli import main
from ddpm.modelfolder import CONFIG, GUIDE, WEIGHTS
from tests.test_pretrained import write_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """An unconditional folder (with early weights), a label-conditioned one, image files good and bad."""
    root = tmp_path_factory.mktemp("cli")
    write_folder(root / "model")
    write_folder(root / "twin", context_dim=10)
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype("uint8")).save(root / "digit.png")
    Image.fromarray((np.random.default_rng(1).random((300, 200, 3)) * 255).astype("uint8")).save(root / "photo.jpg")
    Image.new("L", (10_000, 10_000)).save(root / "huge.png")
    data = (root / "photo.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "text.png").write_text("not an image")
    (root / "empty.png").write_bytes(b"")
    Image.new("RGBA", (28, 28)).save(root / "rgba.png")
    Image.new("1", (28, 28)).save(root / "bilevel.png")
    damaged = {"no-config": lambda f: (f / CONFIG).unlink(), "bad-json": lambda f: (f / CONFIG).write_text("{"),
               "foreign": lambda f: (f / CONFIG).write_text('{"format": "x"}'),
               "truncated": lambda f: (f / WEIGHTS).write_bytes((f / WEIGHTS).read_bytes()[:500]),
               "not-safetensors": lambda f: (f / WEIGHTS).write_bytes(b"\x80\x04 a pickle"),
               "mismatch": lambda f: (f / CONFIG).write_text(json.dumps({**json.loads((f / CONFIG).read_text()),
                                                                      "unet": {"channels": 16, "groups": 8}})),
               "no-guide": lambda f: (f / GUIDE).unlink()}
    for name, damage in damaged.items():
        write_folder(root / name)
        damage(root / name)
    (root / "not-a-folder").write_text("x")
    return root


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ddpm.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def test_sample_complete_and_info_on_a_folder(folders, tmp_path):
    out = tmp_path / "grid.png"
    assert main(["sample", str(folders / "model"), "-n", "6", "--steps", "5", "--seed", "3", "-o", str(out)]) == 0
    assert Image.open(out).size == (6 * 30 + 2, 32)  # one row of six 28×28 digits, 2 pixels apart
    assert main(["sample", str(folders / "model"), "-n", "3", "--steps", "5", "--seed", "3", "-o", str(tmp_path / "a.pt")]) == 0
    assert main(["sample", str(folders / "model"), "-n", "3", "--steps", "5", "--seed", "3", "-o", str(tmp_path / "a.npz")]) == 0
    x, arrays = torch.load(tmp_path / "a.pt"), np.load(tmp_path / "a.npz")
    assert x.shape == (3, 1, 28, 28) and np.array_equal(arrays["images"], x.numpy())  # the same seed, the same images
    assert arrays["uint8"].dtype == np.uint8
    assert main(["sample", str(folders / "twin"), "-n", "2", "--steps", "4", "--label", "3", "--guidance", "2",
                 "-o", str(tmp_path / "threes.pt")]) == 0
    assert main(["sample", str(folders / "model"), "-n", "2", "--steps", "4", "--autoguidance", "1.5",
                 "-o", str(tmp_path / "guided.pt")]) == 0
    assert main(["complete", str(folders / "model"), "--image", str(folders / "digit.png"), "--hide", "bottom",
                 "-n", "2", "--steps", "4", "-o", str(tmp_path / "done.pt")]) == 0
    done = torch.load(tmp_path / "done.pt")
    assert done.shape == (3, 1, 28, 28) and torch.allclose(done[1:, :, :14], done[:1, :, :14], atol=0.02)  # MCG keeps it
    assert main(["info", str(folders / "model")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "a.pt", "done.pt", "grid.png", "guided.pt", "threes.pt"]


def bad_invocations(root: Path) -> list[list[str]]:
    """At least 100 invocations a user could get wrong, each of which must fail cleanly."""
    m, o = str(root / "model"), str(root / "out" / "x.png")
    cases = [[], ["nonsense"], ["sample"], ["sample", m], ["complete", m, "-o", o], ["export", m],
             ["export", m, "--to", "onnx", str(root / "out" / "e")], ["info"], ["sample", m, "-o", o, "--bogus"]]
    for folder in ("missing", "no-config", "bad-json", "foreign", "truncated", "not-safetensors", "mismatch",
                   "not-a-folder"):
        for command in (["sample", "-o", o], ["complete", "--image", str(root / "digit.png"), "--hide", "top", "-o", o],
                        ["info"], ["export", "--to", "diffusers", str(root / "out" / f"exp-{folder}")]):
            cases.append([command[0], str(root / folder), *command[1:]])
    for flag, values in {"-n": ["0", "-5", "100001", "10" * 30, "1.5", "many"],
                         "--steps": ["0", "-1", "101", "100000", "x"], "--eta": ["-0.1", "1.5", "nan", "inf"],
                         "--autoguidance": ["-1", "101", "1e9", "nan"], "--seed": ["-1", "4294967296", "s"],
                         "--batch-size": ["0", "-2", "1000001"], "--sampler": ["heun", "DDIM", ""],
                         "--device": ["tpu", "cuda:7"]}.items():
        cases += [["sample", m, flag, v, "-o", o] for v in values]
    cases += [["sample", m, "--sampler", "ancestral", "--steps", "10", "-o", o],
              ["sample", m, "--label", "3", "-o", o], ["sample", m, "--guidance", "2", "-o", o],
              ["sample", str(root / "twin"), "--label", "12", "-o", o],
              ["sample", str(root / "twin"), "--label", "-1", "-o", o],
              ["sample", str(root / "twin"), "--guidance", "2", "-o", o],
              ["sample", str(root / "twin"), "--label", "3", "--guidance", "-1", "-o", o],
              ["sample", str(root / "twin"), "--label", "3", "--guidance", "1e6", "-o", o],
              ["sample", str(root / "no-guide"), "--autoguidance", "1", "-o", o]]
    for out in ("x.jpg", "x", "x.PNG.txt", "no/such/folder/x.png", "../x.gif"):
        cases.append(["sample", m, "-o", str(root / "out" / out)])
    cases.append(["sample", m, "-o", str(root / "digit.png")])  # exists, no --force
    for image in ("huge.png", "truncated.jpg", "text.png", "empty.png", "missing.png", "out"):
        cases.append(["complete", m, "--image", str(root / image), "--hide", "top", "--steps", "3", "-o", o])
    for extra in (["--hide", "left"], ["--hide", "top", "--route", "magic"], ["--hide", "top", "--scale", "-1"],
                  ["--hide", "top", "--scale", "1e9"], ["--hide", "top", "-n", "0"], ["--hide", "top", "--steps", "0"]):
        cases.append(["complete", m, "--image", str(root / "digit.png"), *extra, "-o", o])
    cases.append(["export", m, "--to", "diffusers", str(root)])  # a folder that is not empty
    cases += [["sample", m, "--amp", "fp16", "-o", o], ["sample", m, "-o", o, "stray-argument"],
              ["complete", m, "--image", str(root / "digit.png"), "--hide", "top", "--scale", "nan", "-o", o],
              ["sample", m, "--eta", "1e400", "-o", o]]
    return cases


def invoke(args: list[str]) -> tuple[int, str]:
    """main(args) in this process, as the console script runs it: (exit status, stderr). An exception that escapes
    main would be a traceback for the user: it fails the test here."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(args)
        except SystemExit as e:  # argparse's usage errors
            status = e.code
    return status, err.getvalue()


def test_a_fuzz_of_bad_invocations_fails_in_one_line_each_and_writes_nothing(folders):
    (folders / "out").mkdir(exist_ok=True)
    cases = bad_invocations(folders)
    assert len(cases) >= 100
    before = {p: p.stat().st_mtime_ns for p in folders.rglob("*")}
    for args in cases:
        status, stderr = invoke(args)
        lines = stderr.strip().splitlines()
        assert status in (1, 2), (args, status, stderr[-500:])
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, stderr[-800:])
    after = {p: p.stat().st_mtime_ns for p in folders.rglob("*")}
    assert after == before, sorted(set(after) ^ set(before))  # not a file was written, touched or left behind


@pytest.mark.parametrize("args, status", [(["sample", "missing", "-o", "x.png"], 1), (["sample"], 2), ([], 2)])
def test_the_real_entry_point_exits_with_the_same_status_and_one_line(folders, args, status):
    r = run_cli(*args, cwd=folders)
    assert r.returncode == status and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_good_odd_images_are_converted_and_resized(folders, tmp_path):
    for name in ("photo.jpg", "rgba.png", "bilevel.png"):
        assert main(["complete", str(folders / "model"), "--image", str(folders / name), "--hide", "top", "-n", "1",
                     "--steps", "2", "-o", str(tmp_path / f"{name}.pt")]) == 0


def test_the_console_script_is_installed():
    script = Path(sys.executable).with_name("ddpm")
    r = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "sample" in r.stdout and "export" in r.stdout
