"""File I/O: atomic writes (a temporary name in the folder, then a rename), and reads with one-line errors."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import make_grid


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_bytes(data: bytes, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_figure(fig: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    """Save a matplotlib figure atomically (the format comes from the path's suffix)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), **kwargs)


def load_torch(path: str | os.PathLike, what: str) -> Any:
    """torch.load with a one-line error naming the file when it is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found; run the stage that makes it (dvc repro)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"{path}: cannot read {what} ({type(e).__name__}: {e}); delete it and re-run dvc repro") from e


def image_grid_pil(images: torch.Tensor, nrow: int = 4, padding: int = 2) -> Any:
    """Images in [−1, 1], (N, C, H, W), as one PIL image grid."""
    return to_pil_image(make_grid((images.detach().float().cpu().clamp(-1, 1) + 1) / 2, nrow=nrow, padding=padding))


def ensure_free_space(folder: Path, needed: int, what: str) -> None:
    """Raise OSError naming the folder and the sizes when fewer than `needed` bytes (plus 1 %) are free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed * 1.01 + 2**20:
        raise OSError(f"{folder}: writing the {what} needs {needed / 2**20:.1f} MiB but only {free / 2**20:.1f} MiB "
                      "are free; free some space (the last good checkpoint is kept) and re-run to resume")


def read_json(path: str | os.PathLike, what: str) -> Any:
    """json.load with a one-line error naming the file when it is missing or not valid JSON."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found; run the stage that makes it (dvc repro)")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: {what} is not valid JSON ({e}); delete it and re-run dvc repro") from None


def save_png_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int, zoom: int = 1) -> None:
    """Images in [−1, 1] as one PNG grid, enlarged `zoom` times."""
    png = image_grid_pil(images, nrow=nrow)
    with atomic_path(path) as tmp:
        png.resize((png.width * zoom, png.height * zoom)).save(tmp, format="png")
