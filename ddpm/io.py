"""File I/O: atomic writes (a temporary name in the folder, then a rename), and reads with one-line errors."""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from PIL import Image


class DataError(RuntimeError):
    """A data file that is missing, corrupt or cannot be fetched (one line, names the file)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The file gets the mode the user's umask gives a new file (mkstemp's is 0600), and a full disk is named with
    the path instead of a bare [Errno 28]."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, f"{path}: cannot write ({e.strerror}); check the folder's permissions and free space") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(e.errno, f"{path}: no space left on the device while writing it; free some space and re-run "
                                   "(the previous version of the file, if any, is kept)") from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def one_line(error: BaseException) -> str:
    """An error as the one line a stage or the command prints: its message's first line, or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_json(obj: Any, path: str | os.PathLike) -> None:
    """Strict JSON: a NaN or an infinity anywhere is an error naming the file and the key, not an invalid file."""
    bad = _non_finite(obj)
    if bad is not None:
        raise FloatingPointError(f"{path}: {bad} is not a finite number; nothing was written (a diverged model or "
                                 "an out-of-range setting: lower the scale, guidance or learning rate that produced it)")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def _non_finite(obj: Any, where: str = "") -> str | None:
    """The first key path (e.g. rows[3].fid_clf) holding NaN or ±inf in a JSON-like object, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return f"{where or 'the value'} = {obj}"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = _non_finite(value, f"{where}.{key}".lstrip(".") if isinstance(key, str) else f"{where}[{key}]")
        if found:
            return found
    return None


def save_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_bytes(data: bytes, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load_torch(path: str | os.PathLike, what: str) -> Any:
    """torch.load with a one-line error naming the file when it is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found; run the stage that makes it (dvc repro)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""  # torch's unpickling errors run to pages
        raise ValueError(f"{path}: cannot read {what} ({type(e).__name__}: {first}); delete it and re-run dvc repro") from e


def image_grid_pil(images: torch.Tensor, nrow: int = 4, padding: int = 2) -> Any:
    """Images in [−1, 1], (N, C, H, W), as one RGB PIL image grid on black: torchvision's make_grid and to_pil_image
    (same bytes), without torchvision, so that the core library and the CLI need only torch and Pillow."""
    x = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    n, c, h, w = x.shape
    if n == 1:  # make_grid returns a lone image unpadded
        return Image.fromarray(x[0].mul(255).byte().permute(1, 2, 0).numpy())
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = torch.zeros(c, rows * (h + padding) + padding, cols * (w + padding) + padding)
    for k in range(n):
        top, left = (k // cols) * (h + padding) + padding, (k % cols) * (w + padding) + padding
        grid[:, top:top + h, left:left + w] = x[k]
    return Image.fromarray(grid.mul(255).byte().permute(1, 2, 0).numpy())


def ensure_free_space(folder: Path, needed: int, what: str) -> None:
    """Raise OSError naming the folder and the sizes when fewer than `needed` bytes (plus 1 %) are free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed * 1.01 + 2**20:
        raise OSError(f"{folder}: writing the {what} needs {needed / 2**20:.1f} MiB but only {free / 2**20:.1f} MiB "
                      "are free; free some space (the last good checkpoint is kept) and re-run to resume")


NUMBER = (int, float)  # for read_json's `expect`: any JSON number (not a bool)


Shape = dict[str, "type | tuple[type, ...] | Shape | list[Shape]"]


def read_json(path: str | os.PathLike, what: str, expect: Shape | None = None) -> Any:
    """json.load with a one-line error naming the file when it is missing, not valid JSON, or (with `expect`, the keys
    each object must hold and their types, or a nested shape) not of the shape the reader needs. `expect` applies to
    the object, or to every object of a list."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found; run the stage that makes it (dvc repro)")
    try:
        data = json.loads(path.read_text(), parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: {what} is not valid JSON ({e}); delete it and re-run dvc repro") from None
    for item in (data if isinstance(data, list) else [data]) if expect else ():
        problem = _shape_problem(item, expect)
        if problem:
            raise ValueError(f"{path}: {what} is malformed ({problem}); delete it and re-run dvc repro")
    if expect and isinstance(data, list) and not data:
        raise ValueError(f"{path}: {what} is empty; delete it and re-run dvc repro")
    return data


def _shape_problem(item: Any, expect: Shape, where: str = "") -> str | None:
    if not isinstance(item, dict):
        return f"{where or 'it'} is not an object"
    for key, kind in expect.items():
        value, name = item.get(key), f"{where}.{key}".lstrip(".")
        if isinstance(kind, list):  # a list whose every element has the shape kind[0]
            if not isinstance(value, list):
                return f"no list {name}"
            problem = next((p for i, v in enumerate(value) if (p := _shape_problem(v, kind[0], f"{name}[{i}]"))), None)
            if problem:
                return problem
        elif isinstance(kind, dict):
            problem = _shape_problem(value, kind, name)
            if problem:
                return problem
        elif not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            return f"no {name} of the right type"
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def save_png_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int, zoom: int = 1) -> None:
    """Images in [−1, 1] as one PNG grid, enlarged `zoom` times."""
    png = image_grid_pil(images, nrow=nrow)
    with atomic_path(path) as tmp:
        png.resize((png.width * zoom, png.height * zoom)).save(tmp, format="png")


def folder_files(folder: Path | None) -> dict[str, bytes]:
    """Every file under `folder`, by its path relative to it (empty when there is none)."""
    if folder is None or not folder.exists():
        return {}
    return {f.relative_to(folder).as_posix(): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def restore_files(folder: Path, files: dict[str, bytes]) -> None:
    """Make `folder` hold exactly `files` (as folder_files returned them): what a killed run logged after its last
    checkpoint goes, and so does what DVC had deleted comes back."""
    shutil.rmtree(folder, ignore_errors=True)
    for name, data in files.items():
        save_bytes(data, folder / name)
