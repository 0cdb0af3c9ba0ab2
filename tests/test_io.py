"""ddpm/io.py: atomic writes, free-space checks, reads with one-line errors, PNG grids, folder snapshots."""
import errno
import json
import os
import shutil
from collections import namedtuple

import pytest
import torch
from PIL import Image

from ddpm import io as I


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_save_text_json_bytes_torch_write_the_content_and_leave_no_temporary_file(tmp_path):
    I.save_text("héllo\n", tmp_path / "a" / "t.txt")
    I.save_json({"x": [1, 2.5], "y": "z"}, tmp_path / "a" / "j.json")
    I.save_bytes(b"\x00\xffbin", tmp_path / "a" / "b.bin")
    I.save_torch({"w": torch.arange(3)}, tmp_path / "a" / "m.pt")
    folder = tmp_path / "a"
    assert (folder / "t.txt").read_text() == "héllo\n"
    assert (folder / "j.json").read_text() == '{\n  "x": [\n    1,\n    2.5\n  ],\n  "y": "z"\n}\n'
    assert (folder / "b.bin").read_bytes() == b"\x00\xffbin"
    assert torch.equal(torch.load(folder / "m.pt")["w"], torch.arange(3))
    assert sorted(p.name for p in folder.iterdir()) == ["b.bin", "j.json", "m.pt", "t.txt"]


def test_atomic_path_gives_the_file_the_umask_mode_not_mkstemps(tmp_path):
    old = os.umask(0o027)
    try:
        I.save_text("x", tmp_path / "f")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640


def test_an_error_inside_atomic_path_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.txt"
    I.save_text("old", path)
    with pytest.raises(KeyError):
        with I.atomic_path(path) as tmp:
            assert tmp != path and tmp.parent == tmp_path and tmp.name.startswith(".f.txt.")
            tmp.write_text("half")
            raise KeyError("boom")
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_a_full_disk_inside_atomic_path_names_the_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "f.txt"
    I.save_text("old", path)
    with pytest.raises(OSError, match="no space left") as info:
        with I.atomic_path(path):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC and str(path) in str(info.value) and "\n" not in str(info.value)
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_save_json_refuses_non_finite_numbers_naming_the_key_and_writes_nothing(tmp_path):
    path = tmp_path / "m.json"
    I.save_json({"ok": 1}, path)
    with pytest.raises(FloatingPointError, match=r"rows\[1\]\.fid_clf = nan is not a finite number"):
        I.save_json({"rows": [{"fid_clf": 1.0}, {"fid_clf": float("nan")}]}, path)
    with pytest.raises(FloatingPointError, match="the value = inf"):
        I.save_json(float("inf"), path)
    assert json.loads(path.read_text()) == {"ok": 1} and leftovers(tmp_path) == []


def test_ensure_free_space_names_the_need_when_the_disk_is_short(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(2**40, 2**40 - 3 * 2**20, 3 * 2**20))
    with pytest.raises(OSError) as info:
        I.ensure_free_space(tmp_path / "ckpt", 10 * 2**20, "checkpoint")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'ckpt'}: writing the checkpoint needs 10.0 MiB")
    assert "only 3.0 MiB are free" in message and (tmp_path / "ckpt").is_dir()
    I.ensure_free_space(tmp_path, 2**20, "checkpoint")  # 1 MiB + 1 % + 1 MiB margin < 3 MiB: fine
    with pytest.raises(OSError):
        I.ensure_free_space(tmp_path, 2 * 2**20, "checkpoint")  # 2.02 MiB + 1 MiB margin > 3 MiB


SHAPE = {"n": int, "score": I.NUMBER, "meta": {"device": str}, "rows": [{"steps": int}]}
GOOD = {"n": 3, "score": 0.5, "meta": {"device": "cpu"}, "rows": [{"steps": 1}, {"steps": 2}]}


def write(tmp_path, obj, name="x.json"):
    (tmp_path / name).write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return tmp_path / name


def test_read_json_returns_data_of_the_expected_shape(tmp_path):
    assert I.read_json(write(tmp_path, GOOD), "the table", SHAPE) == GOOD
    assert I.read_json(write(tmp_path, [GOOD, {**GOOD, "score": 2}]), "the table", SHAPE)[1]["score"] == 2
    assert I.read_json(write(tmp_path, [1, "free"]), "anything") == [1, "free"]  # no shape: no check


@pytest.mark.parametrize("obj, problem", [
    ({k: v for k, v in GOOD.items() if k != "n"}, "no n of the right type"),
    ({**GOOD, "n": "3"}, "no n of the right type"),
    ({**GOOD, "n": 3.0}, "no n of the right type"),
    ({**GOOD, "score": True}, "no score of the right type"),  # a bool is not a number
    ({**GOOD, "meta": {"device": 1}}, "no meta.device of the right type"),
    ({**GOOD, "meta": []}, "meta is not an object"),
    ({**GOOD, "rows": {"steps": 1}}, "no list rows"),
    ({**GOOD, "rows": [{"steps": 1}, {"steps": None}]}, r"no rows\[1\]\.steps of the right type"),
    ([GOOD, 7], "it is not an object"),
])
def test_read_json_names_the_file_and_the_key_of_a_malformed_object(tmp_path, obj, problem):
    path = write(tmp_path, obj)
    with pytest.raises(ValueError, match=f"the table is malformed \\({problem}\\)") as info:
        I.read_json(path, "the table", SHAPE)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_read_json_missing_invalid_non_finite_or_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.json: the table not found"):
        I.read_json(tmp_path / "nope.json", "the table")
    with pytest.raises(ValueError, match=r"x\.json: the table is not valid JSON"):
        I.read_json(write(tmp_path, '{"n": '), "the table")
    with pytest.raises(ValueError, match="NaN is not valid JSON"):
        I.read_json(write(tmp_path, '{"n": NaN}'), "the table")
    with pytest.raises(ValueError, match=r"x\.json: the table is empty"):
        I.read_json(write(tmp_path, "[]"), "the table", SHAPE)


def test_load_torch_round_trip_and_missing_file(tmp_path):
    I.save_torch({"w": torch.ones(2)}, tmp_path / "m.pt")
    assert torch.equal(I.load_torch(tmp_path / "m.pt", "model")["w"], torch.ones(2))
    with pytest.raises(FileNotFoundError) as info:
        I.load_torch(tmp_path / "gone.pt", "the checkpoint")
    expected = f"{tmp_path / 'gone.pt'}: the checkpoint not found; run the stage that makes it (dvc repro)"
    assert str(info.value) == expected


@pytest.mark.parametrize("data", [b"not a torch file", b"PK\x03\x04truncated"])
def test_load_torch_garbage_is_a_value_error_whose_first_line_names_the_file(tmp_path, data):
    (tmp_path / "bad.pt").write_bytes(data)
    with pytest.raises(ValueError) as info:
        I.load_torch(tmp_path / "bad.pt", "the checkpoint")
    assert I.one_line(info.value).startswith(f"{tmp_path / 'bad.pt'}: cannot read the checkpoint (")


def test_load_torch_garbage_message_is_one_line(tmp_path):
    """torch's weights_only UnpicklingError runs to many lines: the message keeps its first and the advice."""
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError) as info:
        I.load_torch(tmp_path / "bad.pt", "the checkpoint")
    assert I.one_line(info.value).endswith("delete it and re-run dvc repro")


def test_one_line_is_the_first_line_or_the_type_name():
    assert I.one_line(ValueError("  first\nsecond\n")) == "first"
    assert I.one_line(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert I.one_line(OSError("   ")) == "OSError"
    assert I.one_line(FileNotFoundError(2, "No such file")) == "[Errno 2] No such file"


@pytest.mark.parametrize("n, nrow, size", [(5, 4, (22, 12)), (3, 8, (17, 7)), (8, 4, (22, 12)), (9, 3, (17, 17))])
def test_image_grid_pil_size_is_cols_and_rows_of_padded_cells(n, nrow, size):
    img = I.image_grid_pil(torch.zeros(n, 1, 3, 3), nrow=nrow)  # cells 3 px, padding 2 px
    assert img.mode == "RGB" and img.size == size


def test_image_grid_pil_maps_minus_one_to_one_onto_0_255_on_black():
    values = torch.tensor([-1.0, 0.0, 1.0, 3.0])  # 3 is clamped to 1; 0 → 127 (truncated, as to_pil_image)
    img = I.image_grid_pil(values.view(4, 1, 1, 1).expand(4, 1, 2, 2), nrow=2)
    assert img.size == (10, 10)  # 2 × (2 px + 2 padding) + 2
    assert [img.getpixel((x, y)) for x, y in [(2, 2), (7, 3), (3, 7), (6, 6)]] == [(0,) * 3, (127,) * 3, (255,) * 3,
                                                                                 (255,) * 3]
    assert img.getpixel((0, 0)) == img.getpixel((4, 4)) == (0, 0, 0)  # padding is black
    color = I.image_grid_pil(torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1))  # one RGB image: unpadded
    assert color.size == (1, 1) and color.getpixel((0, 0)) == (255, 0, 127)


def test_save_png_grid_zooms(tmp_path):
    I.save_png_grid(torch.zeros(4, 1, 3, 3), tmp_path / "g.png", nrow=2, zoom=3)
    assert Image.open(tmp_path / "g.png").size == (36, 36) and leftovers(tmp_path) == []


def test_folder_files_and_restore_files_round_trip(tmp_path):
    src = tmp_path / "live"
    I.save_bytes(b"a", src / "metrics.json")
    I.save_bytes(b"bb", src / "plots" / "metrics" / "train" / "loss.tsv")
    snapshot = I.folder_files(src)
    assert snapshot == {"metrics.json": b"a", "plots/metrics/train/loss.tsv": b"bb"}
    I.save_bytes(b"later", src / "plots" / "metrics" / "epoch" / "loss.tsv")  # logged after the snapshot
    (src / "metrics.json").write_bytes(b"changed")
    I.restore_files(src, snapshot)
    assert I.folder_files(src) == snapshot and not (src / "plots" / "metrics" / "epoch").exists()
    I.restore_files(tmp_path / "gone", snapshot)  # a folder DVC deleted comes back
    assert I.folder_files(tmp_path / "gone") == snapshot
    assert I.folder_files(None) == {} and I.folder_files(tmp_path / "none") == {}
    I.restore_files(src, {})
    assert not src.exists()


def test_data_error_is_a_runtime_error():
    assert issubclass(I.DataError, RuntimeError)
    with pytest.raises(RuntimeError, match="data/x: corrupt"):
        raise I.DataError("data/x: corrupt")
